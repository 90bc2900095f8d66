"""The two providers as test cases: their fake server, their message builders, their settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes import alpaca, massive
from tests.fakes.provider_server import FakeStream


@dataclass(frozen=True)
class ProviderCase:
    name: str
    server: Callable[..., FakeStream]
    # (symbol, ts_ns, bid, ask) → a documented quote item; (symbol, ts_ns, price, size, id) → trade.
    quote: Callable[[str, int, str, str], dict[str, Any]]
    trade: Callable[[str, int, str, int, int], dict[str, Any]]
    # The venue fields each provider's builders put in (see tests/fakes).
    quote_venue: tuple[str, str, list[str], str]
    trade_venue: tuple[str, list[str], str]

    def settings(self, stream_url: str, *, good_key: bool = True) -> dict[str, Any]:
        if self.name == "alpaca":
            return {
                "marketdata_feed": "alpaca",
                "alpaca_key_id": alpaca.KEY_ID,
                "alpaca_secret_key": alpaca.SECRET if good_key else "wrong-secret",
                "alpaca_stream_url": stream_url + "/v2/{feed}",
            }
        return {
            "marketdata_feed": "massive",
            "massive_api_key": massive.API_KEY if good_key else "wrong-key",
            "massive_stream_url": stream_url + "/stocks",
        }

    @property
    def secret(self) -> str:
        return alpaca.SECRET if self.name == "alpaca" else massive.API_KEY


ALPACA = ProviderCase(
    "alpaca",
    alpaca.AlpacaStreamServer,
    lambda s, ts, bid, ask: alpaca.quote(s, ts, bid, ask),
    lambda s, ts, price, size, n: alpaca.trade(s, ts, price, size, n),
    ("V", "V", ["R"], "C"),
    ("V", ["@"], "C"),
)
MASSIVE = ProviderCase(
    "massive",
    massive.MassiveStreamServer,
    lambda s, ts, bid, ask: massive.quote(s, ts // 1_000_000, bid, ask),
    lambda s, ts, price, size, n: massive.trade(s, ts // 1_000_000, price, size, str(n)),
    ("11", "12", ["1"], "C"),
    ("4", ["0", "12"], "C"),
)
CASES = (ALPACA, MASSIVE)
