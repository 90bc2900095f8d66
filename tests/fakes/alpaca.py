"""A local Alpaca market data server: stock stream v2 and historical REST v2, per the docs.

Stream: `[{"T":"success","msg":"connected"}]` on connect; `auth` with key and secret
→ `authenticated`, or error 402 and close; a second connection of the account →
error 406 and close; `subscribe` → a `subscription` echo, or error 405 past the
plan's symbol limit (the connection stays). Data: arrays of `{"T":"q"|"t",…}`.
REST: `/v2/stocks/{symbol}/bars|trades` with the key headers (403 otherwise),
`start`/`end` RFC 3339, `limit`, `page_token` → `next_page_token`.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from tests.fakes.provider_server import Client, FakeRest, FakeStream

KEY_ID = "PKTEST0000000000"
SECRET = "alpaca-test-secret-do-not-log"


def rfc3339_ns(ts_ns: int) -> str:
    """Nanosecond RFC 3339 as the stream sends it."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{nanos:09d}Z"


def parse_time(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000


def quote(
    symbol: str, ts_ns: int, bid: str, ask: str, bid_size: int = 100, ask_size: int = 200
) -> dict[str, Any]:
    # Prices are written into the JSON as the decimals given (json.dumps of a float
    # prints its shortest repr, which is that decimal).
    return {
        "T": "q",
        "S": symbol,
        "bx": "V",
        "bp": float(bid),
        "bs": bid_size,
        "ax": "V",
        "ap": float(ask),
        "as": ask_size,
        "t": rfc3339_ns(ts_ns),
        "c": ["R"],
        "z": "C",
    }


def trade(symbol: str, ts_ns: int, price: str, size: int, trade_id: int) -> dict[str, Any]:
    return {
        "T": "t",
        "i": trade_id,
        "S": symbol,
        "x": "V",
        "p": float(price),
        "s": size,
        "t": rfc3339_ns(ts_ns),
        "c": ["@"],
        "z": "C",
    }


class AlpacaStreamServer(FakeStream):
    def hello(self) -> list[dict[str, Any]]:
        return [{"T": "success", "msg": "connected"}]

    def check_auth(self, message: dict[str, Any]) -> bool:
        return message.get("key") == KEY_ID and message.get("secret") == SECRET

    def auth_failed(self) -> list[dict[str, Any]]:
        return [{"T": "error", "code": 402, "msg": "auth failed"}]

    def too_many_connections(self) -> list[dict[str, Any]]:
        return [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]

    def authenticated(self) -> list[dict[str, Any]]:
        return [{"T": "success", "msg": "authenticated"}]

    def subscribe(self, client: Client, message: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = {kind: set(message.get(kind, [])) for kind in ("trades", "quotes", "bars")}
        merged = {k: client.channels.get(k, set()) | v for k, v in wanted.items()}
        if self.symbol_limit is not None and (
            len(merged["trades"]) > self.symbol_limit or len(merged["quotes"]) > self.symbol_limit
        ):
            return [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
        client.channels = merged
        return [{"T": "subscription", **{k: sorted(v) for k, v in merged.items()}}]

    def kind_and_symbol(self, item: dict[str, Any]) -> tuple[str, str]:
        return {"q": "quotes", "t": "trades", "b": "bars"}[item["T"]], item["S"]


class AlpacaRest(FakeRest):
    """History held as (ts_ns, item) lists per symbol, served `page_size` items a page at most."""

    def __init__(self, page_size: int = 10_000) -> None:
        super().__init__({"/v2/stocks/": self._stocks})
        self.page_size = page_size
        self.bars: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.trades: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    def _stocks(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        if headers.get("apca-api-key-id") != KEY_ID or headers.get("apca-api-secret-key") != SECRET:
            return 403, {}, {"message": "forbidden"}
        _, _, _, symbol, kind = path.split("/")
        start = parse_time(query["start"])
        end = parse_time(query["end"])
        held = (self.bars if kind == "bars" else self.trades).get(symbol, [])
        matching = [item for ts, item in held if start <= ts <= end]
        offset = int(base64.b64decode(query["page_token"])) if "page_token" in query else 0
        limit = min(int(query.get("limit", "1000")), self.page_size)
        page = matching[offset : offset + limit]
        token = (
            base64.b64encode(str(offset + limit).encode()).decode()
            if offset + limit < len(matching)
            else None
        )
        return 200, {}, {kind: page, "symbol": symbol, "next_page_token": token}
