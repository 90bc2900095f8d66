"""Live provider feeds end to end: a local Alpaca or Massive server → the real service → Kafka → ticks.

Each test starts a server speaking the provider's documented WebSocket protocol
(tests/fakes) and the market data service with CIFT_MARKETDATA_FEED set to that
provider, then checks what a user would: the latest quote to the cent with its
venue fields, every tick ingested once with gap-free sequences (reconnects
included), malformed input skipped, and provider errors as one log line and the
feed's health entry, the service staying up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cift.marketdata.v1 import marketdata_pb2 as md
from services.marketdata.__main__ import FEED_HEALTH, provider_feed
from services.marketdata.instruments import load_universe
from services.marketdata.store import KIND_QUOTE
from tests.fakes.provider_server import FakeStream
from tests.integration.marketdata.marketdata_helpers import (
    METADATA,
    RunningService,
    Scenario,
    eventually,
)
from tests.integration.marketdata.provider_cases import ALPACA, CASES, ProviderCase

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)]
MS = 1_000_000
FAST_RETRY = {"marketdata_feed_backoff_s": 0.05, "marketdata_feed_backoff_max_s": 0.3}


@asynccontextmanager
async def fake(case: ProviderCase, **limits: Any) -> AsyncIterator[tuple[FakeStream, str]]:
    server = case.server(**limits)
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


def now_ms_ns() -> int:
    return time.time_ns() // MS * MS


def batch(case: ProviderCase, start_ns: int, n: int) -> list[dict[str, Any]]:
    """n quotes and n trades for AAPL and MSFT, interleaved, a millisecond apart."""
    items = []
    for k in range(n):
        ts = start_ns + 2 * k * MS
        symbol = "AAPL" if k % 2 == 0 else "MSFT"
        cents = 18_000 + k
        items.append(
            case.quote(
                symbol,
                ts,
                f"{cents // 100}.{cents % 100:02d}",
                f"{(cents + 3) // 100}.{(cents + 3) % 100:02d}",
            )
        )
        items.append(
            case.trade(
                symbol, ts + MS, f"{(cents + 1) // 100}.{(cents + 1) % 100:02d}", 10 + k, 1000 + k
            )
        )
    return items


async def ingested(service: RunningService) -> list[Any]:
    async with service.pool.acquire() as conn:
        return list(await conn.fetch("SELECT sequence, kind, symbol FROM ticks ORDER BY sequence"))


async def wait_ticks(service: RunningService, count: int) -> list[Any]:
    async def enough() -> list[Any] | None:
        rows = await ingested(service)
        assert len(rows) <= count, "a tick was ingested twice or an unexpected tick arrived"
        return rows if len(rows) == count else None

    return await eventually(enough, timeout_s=30.0)


def last_quote_sequence(rows: list[Any], symbol: str) -> int:
    return int(
        max(r["sequence"] for r in rows if r["symbol"] == symbol and r["kind"] == KIND_QUOTE)
    )


async def latest_quote_at(service: RunningService, symbol: str, sequence: int) -> md.Quote:
    """The latest quote once it is the one numbered `sequence`.

    The ticks' rows and the latest quote are written one after the other, so a read
    right after the rows appear can still find the quote before (the same symbol's,
    left by an earlier test with the same prices).
    """

    async def caught_up() -> md.Quote | None:
        response = await service.stub.GetLatestQuote(
            md.GetLatestQuoteRequest(symbol=symbol), metadata=METADATA
        )
        return response.quote if response.quote.sequence == sequence else None

    return await eventually(caught_up, timeout_s=10.0)


async def feed_health(service: RunningService) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.config.grpc_port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=FEED_HEALTH)
        )
    return int(response.status)


async def wait_health(service: RunningService, status: int) -> None:
    async def reached() -> bool | None:
        return True if await feed_health(service) == status else None

    await eventually(reached, timeout_s=20.0)


def assert_gap_free(rows: list[Any]) -> None:
    sequences = [r["sequence"] for r in rows]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


async def test_batched_quotes_and_trades_reach_the_latest_quote_exactly_with_venue_fields(
    case: ProviderCase, scenario: Scenario
) -> None:
    async with (
        fake(case) as (server, url),
        scenario.running(**case.settings(url), marketdata_symbols=("AAPL", "MSFT")) as service,
    ):
        await server.wait_subscribed()
        items = batch(case, now_ms_ns(), 40)
        await server.publish(items[:40])  # batched frames, as both providers send them
        await server.publish(items[40:])
        rows = await wait_ticks(service, 80)
        assert_gap_free(rows)
        last = items[-2]  # the last quote sent (MSFT); the last item is a trade
        quote = await latest_quote_at(service, "MSFT", last_quote_sequence(rows, "MSFT"))
        assert Decimal(repr(quote.bid)) == Decimal(repr(last["bp"]))
        assert Decimal(repr(quote.ask)) == Decimal(repr(last["ap"]))
        assert (quote.bid_exchange, quote.ask_exchange, list(quote.conditions), quote.tape) == (
            case.quote_venue[0],
            case.quote_venue[1],
            case.quote_venue[2],
            case.quote_venue[3],
        )
        assert Decimal(repr(quote.last)) == Decimal(repr(items[-1]["p"]))
        trades = await service.stub.GetTrades(md.GetTradesRequest(symbol="AAPL"), metadata=METADATA)
        assert len(trades.trades) == 20
        assert await feed_health(service) == health_pb2.HealthCheckResponse.SERVING


async def test_a_dropped_connection_reconnects_resubscribes_and_sequences_stay_gap_free(
    case: ProviderCase, scenario: Scenario
) -> None:
    async with (
        fake(case) as (server, url),
        scenario.running(
            **case.settings(url), **FAST_RETRY, marketdata_symbols=("AAPL", "MSFT")
        ) as service,
    ):
        await server.wait_subscribed()
        start = now_ms_ns()
        await server.publish(batch(case, start, 10))
        await wait_ticks(service, 20)
        await server.drop_everyone()
        await server.wait_subscribed(2)  # re-authenticated and re-subscribed
        await server.publish(batch(case, start + 100 * MS, 10))
        rows = await wait_ticks(service, 40)
        assert_gap_free(rows)
        assert server.auth_attempts == 2
        assert service.app.provider is not None and service.app.provider.connections == 2


async def test_malformed_messages_are_logged_and_skipped_and_nothing_else_is_lost(
    case: ProviderCase, scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        fake(case) as (server, url),
        scenario.running(**case.settings(url), marketdata_symbols=("AAPL", "MSFT")) as service,
    ):
        await server.wait_subscribed()
        good = batch(case, now_ms_ns(), 3)
        bad = dict(good[0], bp="not-a-price")
        await server.send_raw(json.dumps([good[0], bad, good[1]]))
        await server.send_raw("[{this is not json")
        await server.publish(good[2:])
        rows = await wait_ticks(service, 6)
        assert_gap_free(rows)
    assert any("malformed" in r.getMessage() for r in caplog.records)


async def test_an_auth_failure_is_one_log_line_and_the_feed_health_while_the_service_stays_up(
    case: ProviderCase, scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        fake(case) as (server, url),
        scenario.running(
            **case.settings(url, good_key=False), **FAST_RETRY, marketdata_symbols=("AAPL",)
        ) as service,
    ):

        async def retried(server: FakeStream = server) -> bool | None:
            return True if server.auth_attempts >= 4 else None

        await eventually(retried)
        await wait_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        # The API itself still serves.
        instruments = await service.stub.ListInstruments(
            md.ListInstrumentsRequest(), metadata=METADATA
        )
        assert instruments.instruments
        assert service.app.provider is not None
        assert service.app.provider.health.state == "auth_failed"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "feed" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "auth failed" in errors[0].getMessage()
    # The credential never reaches a log record, even at DEBUG with the frames logged.
    wrong = "wrong-secret" if case.name == "alpaca" else "wrong-key"
    # (The fake provider's own server log shows what it received; only ours must not.)
    ours = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    assert not any(wrong in r.getMessage() or case.secret in r.getMessage() for r in ours)


async def test_the_connection_limit_is_reported_until_the_other_client_leaves(
    case: ProviderCase, scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake(case, max_connections=1) as (server, url):
        # Another client of the same account holds the one connection.
        other_config = scenario.config(**case.settings(url), marketdata_symbols=("AAPL",))
        other = provider_feed(other_config, load_universe(None), lambda _h: None)
        holder = asyncio.create_task(other.run())
        await server.wait_subscribed()
        try:
            async with scenario.running(
                **case.settings(url), **FAST_RETRY, marketdata_symbols=("AAPL",)
            ) as service:
                await wait_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)

                async def limited() -> bool | None:
                    provider = service.app.provider
                    assert provider is not None
                    return True if provider.health.state == "connection_limit" else None

                await eventually(limited)
                holder.cancel()
                await asyncio.gather(holder, return_exceptions=True)
                await wait_health(service, health_pb2.HealthCheckResponse.SERVING)
        finally:
            holder.cancel()
    limit_lines = [r for r in caplog.records if "connection limit" in r.getMessage()]
    assert len(limit_lines) == 1


async def test_a_symbol_limit_is_reported_and_the_connection_kept(
    case: ProviderCase, scenario: Scenario
) -> None:
    if case is not ALPACA:
        pytest.skip("Massive documents no per-connection symbol limit for stocks")
    async with (
        fake(case, symbol_limit=1) as (server, url),
        scenario.running(
            **case.settings(url), **FAST_RETRY, marketdata_symbols=("AAPL", "MSFT")
        ) as service,
    ):
        await wait_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert service.app.provider is not None
        assert service.app.provider.health.state == "symbol_limit"
        await asyncio.sleep(0.5)
        assert server.connections == 1  # no reconnect loop
