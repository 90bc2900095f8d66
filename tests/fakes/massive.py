"""A local Massive (Polygon) server: the stocks WebSocket cluster and REST, per the docs.

Stream: status `connected` on connect; `auth` with `params` → `auth_success`, or
`auth_failed` and close; past the account's connections → `max_connections` and
close; `subscribe` with `T.`/`Q.` channels → a `success` status per channel. Data:
arrays of `{"ev":"Q"|"T","sym":…}` with Unix ms times. REST: `/v2/aggs/ticker/…`
and `/v3/trades/{ticker}` with `Authorization: Bearer` or `apiKey` (401
otherwise), paged by `next_url` carrying a `cursor`.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.fakes.provider_server import Client, FakeRest, FakeStream

API_KEY = "massive-test-key-do-not-log"


def quote(
    symbol: str, ts_ms: int, bid: str, ask: str, bid_size: int = 100, ask_size: int = 200
) -> dict[str, Any]:
    return {
        "ev": "Q",
        "sym": symbol,
        "bx": 11,
        "bp": float(bid),
        "bs": bid_size,
        "ax": 12,
        "ap": float(ask),
        "as": ask_size,
        "c": 1,
        "i": [604],
        "t": ts_ms,
        "q": 50385480,
        "z": 3,
    }


def trade(symbol: str, ts_ms: int, price: str, size: int, trade_id: str) -> dict[str, Any]:
    return {
        "ev": "T",
        "sym": symbol,
        "x": 4,
        "i": trade_id,
        "z": 3,
        "p": float(price),
        "s": size,
        "c": [0, 12],
        "t": ts_ms,
        "q": 3681328,
    }


class MassiveStreamServer(FakeStream):
    def hello(self) -> list[dict[str, Any]]:
        return [{"ev": "status", "status": "connected", "message": "Connected Successfully"}]

    def check_auth(self, message: dict[str, Any]) -> bool:
        return message.get("params") == API_KEY

    def auth_failed(self) -> list[dict[str, Any]]:
        return [{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]

    def too_many_connections(self) -> list[dict[str, Any]]:
        return [
            {
                "ev": "status",
                "status": "max_connections",
                "message": "Maximum number of websocket connections exceeded.",
            }
        ]

    def authenticated(self) -> list[dict[str, Any]]:
        return [{"ev": "status", "status": "auth_success", "message": "authenticated"}]

    def subscribe(self, client: Client, message: dict[str, Any]) -> list[dict[str, Any]]:
        replies = []
        for channel in str(message.get("params", "")).split(","):
            prefix, _, symbol = channel.partition(".")
            kind = {"T": "trades", "Q": "quotes", "AM": "bars"}.get(prefix)
            if kind is None or not symbol:
                replies.append(
                    {"ev": "status", "status": "error", "message": f"bad channel {channel}"}
                )
                continue
            client.channels.setdefault(kind, set()).add(symbol)
            replies.append(
                {"ev": "status", "status": "success", "message": f"subscribed to: {channel}"}
            )
        return replies

    def kind_and_symbol(self, item: dict[str, Any]) -> tuple[str, str]:
        return {"Q": "quotes", "T": "trades", "AM": "bars"}[item["ev"]], item["sym"]


class MassiveRest(FakeRest):
    """Aggregates and trades held as (ts_ns, item) per ticker, `page_size` items a page at most."""

    def __init__(self, page_size: int = 50_000) -> None:
        super().__init__({"/v2/aggs/ticker/": self._aggs, "/v3/trades/": self._trades})
        self.page_size = page_size
        self.base = ""
        self.aggs: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.trades: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    def start(self) -> str:
        self.base = super().start()
        return self.base

    @staticmethod
    def _authorized(query: dict[str, str], headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {API_KEY}" or query.get("apiKey") == API_KEY

    def _page(
        self, path: str, query: dict[str, str], matching: list[dict[str, Any]]
    ) -> tuple[int, dict[str, str], Any]:
        offset = int(base64.b64decode(query["cursor"])) if "cursor" in query else 0
        limit = min(int(query.get("limit", "5000")), self.page_size)
        body: dict[str, Any] = {
            "status": "OK",
            "request_id": f"req-{offset}",
            "results": matching[offset : offset + limit],
        }
        if offset + limit < len(matching):
            cursor = base64.b64encode(str(offset + limit).encode()).decode()
            kept = "&".join(f"{k}={v}" for k, v in query.items() if k not in ("cursor", "apiKey"))
            body["next_url"] = f"{self.base}{path}?cursor={cursor}&{kept}"
        return 200, {}, body

    def _aggs(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        if not self._authorized(query, headers):
            return 401, {}, {"status": "ERROR", "error": "Unknown API Key"}
        # /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}
        parts = path.split("/")
        ticker, from_ms, to_ms = parts[4], int(parts[8]), int(parts[9])
        held = self.aggs.get(ticker, [])
        matching = [i for ts, i in held if from_ms * 10**6 <= ts <= to_ms * 10**6 + 999_999]
        return self._page(path, query, matching)

    def _trades(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        if not self._authorized(query, headers):
            return 401, {}, {"status": "ERROR", "error": "Unknown API Key"}
        ticker = path.split("/")[3]
        gte, lt = int(query["timestamp.gte"]), int(query["timestamp.lt"])
        matching = [i for ts, i in self.trades.get(ticker, []) if gte <= ts < lt]
        return self._page(path, query, matching)
