"""Massive's (formerly Polygon.io) stocks protocols: WebSocket cluster and REST, mapped exactly.

Live: connect to `wss://socket.massive.com/stocks`; the server sends
`[{"ev":"status","status":"connected",…}]`; we send `{"action":"auth","params":KEY}`
and get status `auth_success` (or `auth_failed`); we send
`{"action":"subscribe","params":"T.AAPL,Q.AAPL"}` and get status `success` per
channel. Data frames are JSON arrays of `{"ev":"Q"|"T"|"AM","sym":…}` with Unix
millisecond times. `max_connections` is the connection-limit status.

Field mapping (the provider's names on the left):
- quote `bp`/`ap` → bid/ask, `bs`/`as` → sizes, `bx`/`ax` → exchange ids (as text),
  `c` (one condition code) → conditions, `z` (1, 2, 3) → tape A, B, C, `t` → ts_ns.
- trade `p`/`s` → price/size, `x` → exchange id, `c` → conditions, `z` → tape,
  `i` → trade_id, `t` → ts_ns.
- minute aggregate `o`/`h`/`l`/`c`/`v` → OHLCV, `vw` → vwap, `s` → start.
- REST aggregates (`/v2/aggs`) `o h l c v vw n t`; REST trades (`/v3/trades`)
  `price size exchange conditions tape id sip_timestamp` (ns).

Pure: no I/O; the key appears only in `auth_message` and `headers` (REST uses the
documented `Authorization: Bearer` header rather than `apiKey=` in the URL, so the
key never reaches a logged URL, including the `next_url` pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from services.marketdata.bars import Bar, parse_timeframe
from services.marketdata.providers.frames import (
    ItemReader,
    NonNegative,
    TaggedFrames,
    bar_from_letters,
    non_negative,
)
from services.marketdata.providers.protocol import (
    Control,
    ControlMessage,
    Page,
    PageRequest,
    Problem,
)
from services.marketdata.providers.times import unix_ms_ns
from services.marketdata.ticks import Quote, Trade

PAGE_LIMIT = 50_000  # the documented maximum per page
TAPES = {1: "A", 2: "B", 3: "C"}
# Our timeframes as the aggregates endpoint's multiplier and timespan.
AGGREGATE_RANGES = {
    "1Sec": (1, "second"),
    "1Min": (1, "minute"),
    "5Min": (5, "minute"),
    "15Min": (15, "minute"),
    "1Hour": (1, "hour"),
    "1Day": (1, "day"),
}


def _tape(value: Any) -> str:
    if value is None:
        return ""
    return TAPES.get(int(value), str(value))


def _id(value: Any) -> str:
    return "" if value is None else str(value)


def _codes(values: Any) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, list):
        return tuple(str(int(v)) for v in values)
    return (str(int(values)),)


def quote_from(item: dict[str, Any]) -> Quote:
    return Quote(
        str(item["sym"]),
        unix_ms_ns(item["t"]),
        non_negative(item["bp"], "bp"),
        non_negative(item["ap"], "ap"),
        non_negative(item["bs"], "bs"),
        non_negative(item["as"], "as"),
        bid_exchange=_id(item.get("bx")),
        ask_exchange=_id(item.get("ax")),
        conditions=_codes(item.get("c")),
        tape=_tape(item.get("z")),
    )


# A trade's price, size, exchange, conditions, tape and id: the stream abbreviates
# their names, REST trades spell them out; the values read the same.
_STREAM_TRADE_FIELDS = ("p", "s", "x", "c", "z", "i")
_REST_TRADE_FIELDS = ("price", "size", "exchange", "conditions", "tape", "id")


def _trade(item: dict[str, Any], symbol: str, ts_ns: int, fields: tuple[str, ...]) -> Trade:
    price, size, exchange, conditions, tape, trade_id = fields
    return Trade(
        symbol,
        ts_ns,
        non_negative(item[price], price),
        non_negative(item[size], size),
        exchange=_id(item.get(exchange)),
        conditions=_codes(item.get(conditions)),
        tape=_tape(item.get(tape)),
        trade_id=_id(item.get(trade_id)),
    )


def trade_from(item: dict[str, Any]) -> Trade:
    return _trade(item, str(item["sym"]), unix_ms_ns(item["t"]), _STREAM_TRADE_FIELDS)


Codes = int | list[int] | None


def _int_codes(values: Codes) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, list):
        return tuple(map(str, values))
    return (str(values),)


class _StreamQuote(msgspec.Struct, tag_field="ev", tag="Q", gc=False):
    """A stream quote in its documented shape, for the compiled path of `decode`."""

    sym: str
    t: int
    bp: NonNegative
    ap: NonNegative
    bs: NonNegative
    as_: NonNegative = msgspec.field(name="as")
    bx: int | None = None
    ax: int | None = None
    c: Codes = None
    z: int | None = None

    def tick(self) -> Quote:
        bx, ax, z = self.bx, self.ax, self.z
        return Quote(
            self.sym,
            self.t * 1_000_000,
            self.bp,
            self.ap,
            self.bs,
            self.as_,
            "" if bx is None else str(bx),
            "" if ax is None else str(ax),
            _int_codes(self.c),
            "" if z is None else TAPES.get(z) or str(z),
        )


class _StreamTrade(msgspec.Struct, tag_field="ev", tag="T", gc=False):
    """A stream trade in its documented shape (`i` is the trade id as text)."""

    sym: str
    t: int
    p: NonNegative
    s: NonNegative
    x: int | None = None
    c: Codes = None
    z: int | None = None
    i: str | None = None

    def tick(self) -> Trade:
        x, z = self.x, self.z
        return Trade(
            self.sym,
            self.t * 1_000_000,
            self.p,
            self.s,
            exchange="" if x is None else str(x),
            conditions=_int_codes(self.c),
            tape="" if z is None else TAPES.get(z) or str(z),
            trade_id=self.i or "",
        )


# A frame of quotes and trades only, every item in its documented shape: parsed and
# checked in C in one call (integer milliseconds included), a fraction of the
# per-item path's cost. Anything else (status events, aggregates, a malformed item)
# fails it and the frame takes the per-item path, which yields the same ticks (a
# unit test holds the two paths equal).
TICK_FRAME = msgspec.json.Decoder(list[_StreamQuote | _StreamTrade])


def minute_bar_from(item: dict[str, Any]) -> Bar:
    # The stream's aggregates carry an average trade size, not a count: count 0.
    return bar_from_letters(item, str(item["sym"]), "1Min", unix_ms_ns(item["s"]), 0)


def rest_bar_from(item: dict[str, Any], symbol: str, timeframe: str) -> Bar:
    return bar_from_letters(item, symbol, timeframe, unix_ms_ns(item["t"]), int(item.get("n", 0)))


def rest_trade_from(item: dict[str, Any], symbol: str) -> Trade:
    ts_ns = item["sip_timestamp"]
    if not isinstance(ts_ns, int):
        raise ValueError(f"sip_timestamp must be integer ns, not {ts_ns!r}")
    return _trade(item, symbol, ts_ns, _REST_TRADE_FIELDS)


_STATUS_CONTROLS = {
    "connected": Control.CONNECTED,
    "auth_success": Control.AUTHENTICATED,
    "success": Control.SUBSCRIBED,
}
_STATUS_PROBLEMS = {
    "auth_failed": Problem.AUTH_FAILED,
    "auth_timeout": Problem.AUTH_FAILED,
    "max_connections": Problem.CONNECTION_LIMIT,
}


def _status(item: dict[str, Any]) -> ControlMessage:
    status = str(item["status"])
    text = str(item.get("message", ""))
    kind = _STATUS_CONTROLS.get(status)
    if kind is not None:
        return ControlMessage(kind, text)
    problem = _STATUS_PROBLEMS.get(status)
    if problem is None:
        lowered = text.lower()
        problem = (
            Problem.SYMBOL_LIMIT
            if "limit" in lowered and ("symbol" in lowered or "subscri" in lowered)
            else Problem.TRANSIENT
        )
    return ControlMessage(Control.ERROR, text, status, problem)


# The stream kinds read; any other kind is skipped.
STREAM_READERS: dict[str, ItemReader] = {
    "Q": quote_from,
    "T": trade_from,
    "AM": minute_bar_from,
    "status": _status,
}


class MassiveStream(TaggedFrames):
    """The stocks cluster; `decode` is the hot path (one call per frame)."""

    name = "massive"

    kind_field = "ev"
    tick_frame = TICK_FRAME
    readers = STREAM_READERS

    def __init__(self, api_key: str, stream_url: str) -> None:
        super().__init__(stream_url)
        self._api_key = api_key

    def auth_message(self) -> str:
        return orjson.dumps({"action": "auth", "params": self._api_key}).decode()

    def subscribe_message(self, symbols: Sequence[str]) -> str:
        channels = [f"T.{s}" for s in symbols] + [f"Q.{s}" for s in symbols]
        return orjson.dumps({"action": "subscribe", "params": ",".join(channels)}).decode()


class MassiveHistory:
    """Aggregates and trades over REST, `next_url` pagination."""

    name = "massive"

    def __init__(self, api_key: str, rest_url: str) -> None:
        self._api_key = api_key
        self._base = rest_url.rstrip("/")

    def __repr__(self) -> str:
        return f"MassiveHistory(base={self._base!r})"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def bars_request(self, symbol: str, timeframe: str, start_ns: int, end_ns: int) -> PageRequest:
        multiplier, timespan = AGGREGATE_RANGES[parse_timeframe(timeframe).name]
        # Millisecond bounds, both inclusive: the last millisecond before end_ns.
        start_ms = start_ns // 1_000_000
        end_ms = (end_ns - 1) // 1_000_000
        return PageRequest(
            f"{self._base}/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}/{start_ms}/{end_ms}",
            {"adjusted": "false", "sort": "asc", "limit": str(PAGE_LIMIT)},
        )

    def trades_request(self, symbol: str, start_ns: int, end_ns: int) -> PageRequest:
        return PageRequest(
            f"{self._base}/v3/trades/{symbol}",
            {
                "timestamp.gte": str(start_ns),
                "timestamp.lt": str(end_ns),
                "order": "asc",
                "sort": "timestamp",
                "limit": str(PAGE_LIMIT),
            },
        )

    @staticmethod
    def _next(body: dict[str, Any]) -> PageRequest | None:
        url = body.get("next_url")
        # The next page's query (cursor) is inside the URL.
        return PageRequest(str(url)) if url else None

    def parse_bars(self, request: PageRequest, symbol: str, timeframe: str, body: Any) -> Page:
        name = parse_timeframe(timeframe).name
        bars = [rest_bar_from(item, symbol, name) for item in body.get("results") or ()]
        return Page(bars, [], self._next(body))

    def parse_trades(self, request: PageRequest, symbol: str, body: Any) -> Page:
        trades = [rest_trade_from(item, symbol) for item in body.get("results") or ()]
        return Page([], trades, self._next(body))
