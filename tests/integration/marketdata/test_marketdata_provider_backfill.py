"""Backfill from local Alpaca and Massive REST servers into the real schema, read back over gRPC.

Pagination across three pages, a 429 with Retry-After waited out, and a run cut
off mid-way resumed by running the same command again, without writing a page twice.
"""

from __future__ import annotations

import argparse
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from cift.marketdata.v1 import marketdata_pb2 as md
from cift.runtime.errors import InvalidArgument
from cift.runtime.timestamps import timestamp
from services.marketdata.providers.backfill_cli import run_backfill
from tests.fakes import alpaca, massive
from tests.fakes.provider_server import FakeRest
from tests.integration.marketdata.marketdata_helpers import METADATA, Scenario

pytestmark = pytest.mark.integration
DAY_NS = 86_400 * 10**9
START = int(dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC).timestamp()) * 10**9
MIN_NS = 60 * 10**9
BARS = 25  # with 10 a page: three pages


def args(provider: str, kinds: str = "bars,trades") -> argparse.Namespace:
    return argparse.Namespace(
        provider=provider,
        symbols="AAPL",
        start="2024-01-02",
        end="2024-01-02",
        timeframe="1Min",
        kinds=kinds,
    )


def price(k: int) -> float:
    return float(Decimal("185.10") + Decimal(k) / 100)


def alpaca_server() -> tuple[FakeRest, dict[str, Any]]:
    server = alpaca.AlpacaRest(page_size=10)
    server.bars["AAPL"] = [
        (
            START + k * MIN_NS,
            {
                "t": alpaca.rfc3339_ns(START + k * MIN_NS).replace(".000000000", ""),
                "o": price(k),
                "h": price(k + 5),
                "l": price(k - 5),
                "c": price(k + 1),
                "v": 1000 + k,
                "n": 10 + k,
                "vw": price(k),
            },
        )
        for k in range(BARS)
    ]
    server.trades["AAPL"] = [
        (
            START + k * 10**6,
            {
                k2: v
                for k2, v in alpaca.trade(
                    "AAPL", START + k * 10**6, f"{price(k):.2f}", 5, k
                ).items()
                if k2 not in ("T", "S")
            },
        )
        for k in range(BARS)
    ]
    url = server.start()
    return server, {
        "alpaca_key_id": alpaca.KEY_ID,
        "alpaca_secret_key": alpaca.SECRET,
        "alpaca_data_url": url,
    }


def massive_server() -> tuple[FakeRest, dict[str, Any]]:
    server = massive.MassiveRest(page_size=10)
    server.aggs["AAPL"] = [
        (
            START + k * MIN_NS,
            {
                "t": (START + k * MIN_NS) // 10**6,
                "o": price(k),
                "h": price(k + 5),
                "l": price(k - 5),
                "c": price(k + 1),
                "v": 1000 + k,
                "vw": price(k),
                "n": 10 + k,
            },
        )
        for k in range(BARS)
    ]
    server.trades["AAPL"] = [
        (
            START + k * 10**6,
            {
                "conditions": [12],
                "exchange": 11,
                "id": str(k),
                "price": price(k),
                "sip_timestamp": START + k * 10**6,
                "participant_timestamp": START + k * 10**6 - 500,
                "size": 5,
                "tape": 3,
            },
        )
        for k in range(BARS)
    ]
    url = server.start()
    return server, {"massive_api_key": massive.API_KEY, "massive_rest_url": url}


SERVERS = {"alpaca": alpaca_server, "massive": massive_server}


async def read_back(scenario: Scenario) -> tuple[list[md.Bar], list[md.Trade]]:
    async with scenario.running(marketdata_feed="none") as service:
        start, end = timestamp(START - DAY_NS), timestamp(START + DAY_NS)
        bars = await service.stub.GetBars(
            md.GetBarsRequest(
                symbol="AAPL", timeframe="1Min", page_size=1000, start=start, end=end
            ),
            metadata=METADATA,
        )
        trades = await service.stub.GetTrades(
            md.GetTradesRequest(symbol="AAPL", page_size=1000, start=start, end=end),
            metadata=METADATA,
        )
    return list(bars.bars), list(trades.trades)


@pytest.mark.parametrize("provider", ["alpaca", "massive"])
async def test_three_pages_of_bars_and_trades_with_a_429_in_between(
    provider: str, scenario: Scenario
) -> None:
    server, settings = SERVERS[provider]()
    try:
        server.throttle_next = 0
        config = scenario.config(**settings)
        first_pages = len(server.requests)
        server.throttle_next = 1  # the very first request is told to wait a second
        assert await run_backfill(config, args(provider)) == 0
        # 3 pages of bars + 3 of trades + the throttled attempt.
        assert len(server.requests) - first_pages == 7
    finally:
        server.stop()
    bars, trades = await read_back(scenario)
    assert len(bars) == BARS and len(trades) == BARS
    for k, bar in enumerate(bars):
        assert bar.start_time.ToNanoseconds() == START + k * MIN_NS
        assert [Decimal(repr(v)) for v in (bar.open, bar.high, bar.low, bar.close)] == [
            Decimal(repr(price(k))),
            Decimal(repr(price(k + 5))),
            Decimal(repr(price(k - 5))),
            Decimal(repr(price(k + 1))),
        ]
        assert (bar.volume, bar.trade_count) == (1000 + k, 10 + k)
    assert [Decimal(repr(t.price)) for t in trades] == [
        Decimal(repr(price(k))) for k in range(BARS)
    ]
    assert [t.timestamp.ToNanoseconds() for t in trades] == [START + k * 10**6 for k in range(BARS)]


@pytest.mark.parametrize("provider", ["alpaca", "massive"])
async def test_an_interrupted_backfill_resumes_at_the_next_page_without_duplicates(
    provider: str, scenario: Scenario
) -> None:
    server, settings = SERVERS[provider]()
    try:
        config = scenario.config(**settings)
        routes = dict(server.routes)
        calls = {"n": 0}
        (prefix, handler), *_ = routes.items()

        def fail_after_first_page(path: str, query: dict[str, str], headers: dict[str, str]) -> Any:
            calls["n"] += 1
            if calls["n"] > 1:
                return 400, {}, {"message": "cut off"}
            return handler(path, query, headers)

        server.routes[prefix] = fail_after_first_page
        with pytest.raises(InvalidArgument, match="cut off"):
            await run_backfill(config, args(provider, kinds="bars"))
        server.routes[prefix] = handler
        before = len(server.requests)
        await run_backfill(config, args(provider, kinds="bars"))
        resumed = server.requests[before:]
        assert len(resumed) == 2  # pages two and three only
        assert any(k in resumed[0][1] for k in ("page_token", "cursor"))
        before = len(server.requests)
        await run_backfill(config, args(provider, kinds="bars"))  # already done: no request
        assert len(server.requests) == before
    finally:
        server.stop()
    bars, _ = await read_back(scenario)
    assert [b.start_time.ToNanoseconds() for b in bars] == [START + k * MIN_NS for k in range(BARS)]
