"""Alpaca's market data protocols (stock stream v2 and historical REST v2), mapped exactly.

Live: connect to `wss://stream.data.alpaca.markets/v2/{iex|sip}`; the server says
`[{"T":"success","msg":"connected"}]`; we send `{"action":"auth","key":…,"secret":…}`
and get `authenticated`; we send `{"action":"subscribe","trades":[…],"quotes":[…]}`
and get a `subscription` echo. Data frames are JSON arrays of
`{"T":"q"|"t"|"b","S":symbol,…}` with RFC 3339 nanosecond times; errors are
`{"T":"error","code":…,"msg":…}`.

Field mapping (the provider's names on the left):
- quote `bp`/`ap` → bid/ask, `bs`/`as` → bid_size/ask_size, `bx`/`ax` → bid/ask
  exchange, `c` → conditions, `z` → tape, `t` → ts_ns.
- trade `p`/`s` → price/size, `x` → exchange, `c` → conditions, `z` → tape,
  `i` → trade_id, `t` → ts_ns.
- bar `o`/`h`/`l`/`c`/`v` → OHLCV, `vw` → vwap (kept as notional = vw·v), `n` →
  trade_count, `t` → start.

Prices arrive as JSON numbers: each becomes the double nearest the decimal the
provider wrote, whose shortest repr is that decimal again (exact to every digit
a price can have). Pure: no I/O, and the credentials appear only in `auth_message`
and `headers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from cift.runtime.errors import InvalidArgument
from services.marketdata.bars import Bar, parse_timeframe
from services.marketdata.config import ALPACA_DATA_FEEDS
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
from services.marketdata.providers.times import rfc3339, rfc3339_ns
from services.marketdata.ticks import Quote, Trade

PAGE_LIMIT = 10_000  # the documented maximum per page
# Stream error codes (documented) and what each means for the connection.
ERROR_PROBLEMS = {
    401: Problem.AUTH_FAILED,  # not authenticated
    402: Problem.AUTH_FAILED,  # auth failed
    403: Problem.AUTH_FAILED,  # already authenticated
    404: Problem.AUTH_FAILED,  # auth timeout
    405: Problem.SYMBOL_LIMIT,  # symbol limit exceeded
    406: Problem.CONNECTION_LIMIT,  # connection limit exceeded
    409: Problem.AUTH_FAILED,  # insufficient subscription (feed not in the plan)
}
# Alpaca REST accepts these bar timeframes (no seconds).
REST_TIMEFRAMES = ("1Min", "5Min", "15Min", "1Hour", "1Day")


def _strings(values: Any) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ValueError(f"conditions must be a list, not {values!r}")
    return tuple(map(str, values))


def quote_from(item: dict[str, Any], symbol: str | None = None) -> Quote:
    """A quote object (stream `q`, or a REST quote with the symbol given)."""
    return Quote(
        symbol if symbol is not None else str(item["S"]),
        rfc3339_ns(item["t"]),
        non_negative(item["bp"], "bp"),
        non_negative(item["ap"], "ap"),
        non_negative(item["bs"], "bs"),
        non_negative(item["as"], "as"),
        bid_exchange=str(item.get("bx") or ""),
        ask_exchange=str(item.get("ax") or ""),
        conditions=_strings(item.get("c")),
        tape=str(item.get("z") or ""),
    )


def trade_from(item: dict[str, Any], symbol: str | None = None) -> Trade:
    """A trade object (stream `t`, or a REST trade with the symbol given)."""
    trade_id = item.get("i")
    return Trade(
        symbol if symbol is not None else str(item["S"]),
        rfc3339_ns(item["t"]),
        non_negative(item["p"], "p"),
        non_negative(item["s"], "s"),
        exchange=str(item.get("x") or ""),
        conditions=_strings(item.get("c")),
        tape=str(item.get("z") or ""),
        trade_id="" if trade_id is None else str(trade_id),
    )


def bar_from(item: dict[str, Any], timeframe: str, symbol: str | None = None) -> Bar:
    """A bar object (stream `b` is always 1Min; REST bars have the timeframe asked for)."""
    return bar_from_letters(
        item,
        symbol if symbol is not None else str(item["S"]),
        timeframe,
        rfc3339_ns(item["t"]),
        int(item.get("n", 0)),
    )


class _StreamQuote(msgspec.Struct, tag_field="T", tag="q", gc=False):
    """A stream quote in its documented shape, for the compiled path of `decode`."""

    S: str
    t: str
    bp: NonNegative
    ap: NonNegative
    bs: NonNegative
    as_: NonNegative = msgspec.field(name="as")
    bx: str | None = None
    ax: str | None = None
    c: list[str] | None = None
    z: str | None = None

    def tick(self) -> Quote:
        c = self.c
        return Quote(
            self.S,
            rfc3339_ns(self.t),
            self.bp,
            self.ap,
            self.bs,
            self.as_,
            self.bx or "",
            self.ax or "",
            tuple(c) if c else (),
            self.z or "",
        )


class _StreamTrade(msgspec.Struct, tag_field="T", tag="t", gc=False):
    """A stream trade in its documented shape (`i` is an integer id)."""

    S: str
    t: str
    p: NonNegative
    s: NonNegative
    x: str | None = None
    c: list[str] | None = None
    z: str | None = None
    i: int | str | None = None

    def tick(self) -> Trade:
        c = self.c
        trade_id = self.i
        return Trade(
            self.S,
            rfc3339_ns(self.t),
            self.p,
            self.s,
            exchange=self.x or "",
            conditions=tuple(c) if c else (),
            tape=self.z or "",
            trade_id="" if trade_id is None else str(trade_id),
        )


# A frame of quotes and trades only, every item in its documented shape: parsed and
# checked in C in one call, about a tenth of the per-item path's cost. Anything else
# (controls, bars, a malformed item) fails it and the frame takes the per-item path,
# which yields the same ticks (a unit test holds the two paths equal).
TICK_FRAME = msgspec.json.Decoder(list[_StreamQuote | _StreamTrade])


def _control(item: dict[str, Any]) -> ControlMessage:
    kind = item["T"]
    if kind == "success":
        message = str(item.get("msg", ""))
        if message == "connected":
            return ControlMessage(Control.CONNECTED, message)
        if message == "authenticated":
            return ControlMessage(Control.AUTHENTICATED, message)
        raise ValueError(f"unknown success message {message!r}")
    if kind == "subscription":
        channels = {k: v for k, v in item.items() if k != "T" and v}
        return ControlMessage(Control.SUBSCRIBED, orjson.dumps(channels).decode())
    code = int(item.get("code", 0))
    return ControlMessage(
        Control.ERROR,
        str(item.get("msg", "")),
        str(code),
        ERROR_PROBLEMS.get(code, Problem.TRANSIENT),
    )


# The stream kinds read; other documented kinds (statuses, corrections, LULD) are not
# subscribed and are skipped.
STREAM_READERS: dict[str, ItemReader] = {
    "q": quote_from,
    "t": trade_from,
    "b": lambda item: bar_from(item, "1Min"),
    "success": _control,
    "subscription": _control,
    "error": _control,
}


class AlpacaStream(TaggedFrames):
    """The stock stream of one account; `decode` is the hot path (one call per frame)."""

    name = "alpaca"

    kind_field = "T"
    tick_frame = TICK_FRAME
    readers = STREAM_READERS

    def __init__(self, key_id: str, secret_key: str, stream_url: str, data_feed: str) -> None:
        if data_feed not in ALPACA_DATA_FEEDS:
            raise InvalidArgument(f"CIFT_ALPACA_DATA_FEED must be iex or sip, not {data_feed!r}.")
        super().__init__(stream_url.replace("{feed}", data_feed))
        self._key_id = key_id
        self._secret_key = secret_key

    def auth_message(self) -> str:
        return orjson.dumps(
            {"action": "auth", "key": self._key_id, "secret": self._secret_key}
        ).decode()

    def subscribe_message(self, symbols: Sequence[str]) -> str:
        # Bars are built by the ingest from these same trades; the provider's own bars
        # come in through the REST backfill.
        return orjson.dumps(
            {"action": "subscribe", "trades": list(symbols), "quotes": list(symbols)}
        ).decode()


class AlpacaHistory:
    """Historical bars and trades, `next_page_token` pagination."""

    name = "alpaca"

    def __init__(self, key_id: str, secret_key: str, data_url: str, data_feed: str) -> None:
        self._key_id = key_id
        self._secret_key = secret_key
        self._base = data_url.rstrip("/")
        self._feed = data_feed

    def __repr__(self) -> str:
        return f"AlpacaHistory(base={self._base!r})"

    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self._key_id, "APCA-API-SECRET-KEY": self._secret_key}

    def _params(self, start_ns: int, end_ns: int) -> dict[str, str]:
        return {
            "start": rfc3339(start_ns),
            "end": rfc3339(end_ns),
            "limit": str(PAGE_LIMIT),
            "feed": self._feed,
            "sort": "asc",
        }

    def bars_request(self, symbol: str, timeframe: str, start_ns: int, end_ns: int) -> PageRequest:
        name = parse_timeframe(timeframe).name
        if name not in REST_TIMEFRAMES:
            raise InvalidArgument(
                f"Alpaca has no {name} bars; use one of {', '.join(REST_TIMEFRAMES)}."
            )
        params = self._params(start_ns, end_ns)
        params.update(timeframe=name, adjustment="raw")
        return PageRequest(f"{self._base}/v2/stocks/{symbol}/bars", params)

    def trades_request(self, symbol: str, start_ns: int, end_ns: int) -> PageRequest:
        return PageRequest(
            f"{self._base}/v2/stocks/{symbol}/trades", self._params(start_ns, end_ns)
        )

    @staticmethod
    def _next(request: PageRequest, body: dict[str, Any]) -> PageRequest | None:
        token = body.get("next_page_token")
        if not token:
            return None
        return PageRequest(request.url, {**request.params, "page_token": str(token)})

    def parse_bars(self, request: PageRequest, symbol: str, timeframe: str, body: Any) -> Page:
        bars = [bar_from(item, timeframe, symbol) for item in body.get("bars") or ()]
        return Page(bars, [], self._next(request, body))

    def parse_trades(self, request: PageRequest, symbol: str, body: Any) -> Page:
        trades = [trade_from(item, symbol) for item in body.get("trades") or ()]
        return Page([], trades, self._next(request, body))
