"""Restart recovery: the ingest loses nothing and counts nothing twice across restarts."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Any

import asyncpg
import pytest

from cift.marketdata.v1 import marketdata_pb2 as md
from cift.runtime.kafka import EventProducer
from services.marketdata.events import publish_ticks
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from services.marketdata.ticks import Tick, Trade
from tests.integration.marketdata.bar_reference import reference_bars
from tests.integration.marketdata.marketdata_helpers import METADATA, Scenario, eventually

pytestmark = pytest.mark.integration

# 2 January 2024, 14:30 UTC: history, so no live clock interferes.
START_NS = 1_704_205_800 * 1_000_000_000
S = 1_000_000_000


async def publish(scenario: Scenario, runner: FeedRunner, ticks: list[Tick]) -> None:
    producer = EventProducer(scenario.infra.kafka_bootstrap, "marketdata-test")
    await producer.start()
    try:
        await publish_ticks(producer, runner.stamp(ticks), scenario.topic)
        await producer.flush()
    finally:
        await producer.stop()


async def tick_count(pool: Any, expected: int) -> int | None:
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM ticks")
    return count if count == expected else None


async def test_bars_rebuilt_after_restarts_and_a_full_replay_equal_bars_built_in_one_go(
    scenario: Scenario,
) -> None:
    ticks = Simulator(
        default_universe(), seed=99, rate_per_symbol=40.0, start_ns=START_NS
    ).next_events(9000)
    runner = FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.01, sequence_base=10_000)

    async with scenario.running(marketdata_feed="none") as first:
        await publish(scenario, runner, ticks[:4000])
        await eventually(lambda: tick_count(first.pool, 4000))

    # A new consumer group re-reads the topic from its start: every tick is replayed.
    async with scenario.running(
        marketdata_feed="none", marketdata_ingest_group="ingest-replay"
    ) as second:
        await publish(scenario, runner, ticks[4000:7000])
        await eventually(lambda: tick_count(second.pool, 7000))

    async with scenario.running(marketdata_feed="none") as third:
        await publish(scenario, runner, ticks[7000:])
        await eventually(lambda: tick_count(third.pool, 9000))
        async with third.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(DISTINCT sequence) FROM ticks") == 9000
            rows = await conn.fetch(
                "SELECT symbol, timeframe, start_ns, open, high, low, close, volume, notional, trade_count, closed "
                "FROM bars"
            )
            partitions = await conn.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ticks'::regclass"
            )
        assert partitions == 1  # all of these ticks fall on one day

    assert_bars_match(rows, ticks)


def assert_bars_match(rows: list[Any], ticks: list[Tick]) -> None:
    """Stored bars equal bars aggregated independently from the ticks' trades."""
    trades = [(t.symbol, t.ts_ns, t.price, t.size) for t in ticks if isinstance(t, Trade)]
    expected = reference_bars(trades)
    stored = {(r["symbol"], r["timeframe"], r["start_ns"]): r for r in rows}
    assert set(stored) == set(expected)
    for key, (o, h, lo, c, volume, notional, count) in expected.items():
        row = stored[key]
        assert (row["open"], row["high"], row["low"], row["close"]) == (o, h, lo, c), key
        assert row["volume"] == volume and row["trade_count"] == count, key
        assert math.isclose(row["notional"], notional, rel_tol=1e-12), key
    # At most one open bar per (symbol, timeframe), and it is the latest one.
    latest: dict[tuple[str, str], int] = {}
    for symbol, timeframe, start in stored:
        latest[(symbol, timeframe)] = max(latest.get((symbol, timeframe), 0), start)
    open_keys = [k for k, r in stored.items() if not r["closed"]]
    assert len({(s, tf) for s, tf, _ in open_keys}) == len(open_keys)
    assert all(start == latest[(s, tf)] for s, tf, start in open_keys)
    assert open_keys  # the last bars of the session are still open


async def test_two_processes_share_the_ingest_and_each_streams_every_tick(
    scenario: Scenario,
) -> None:
    ticks = Simulator(
        default_universe(), seed=7, rate_per_symbol=40.0, start_ns=START_NS
    ).next_events(6000)
    runner = FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.01, sequence_base=50_000)
    async with (
        scenario.running(marketdata_feed="none") as first,
        scenario.running(marketdata_feed="none") as second,
    ):
        stream = second.stub.StreamTrades(
            md.StreamTradesRequest(symbols=["AAPL"]), metadata=METADATA
        )
        await asyncio.sleep(3.0)  # let both consumer groups settle on their partitions
        await publish(scenario, runner, ticks)
        await eventually(lambda: tick_count(first.pool, 6000), timeout_s=60.0)
        streamed: list[int] = []
        async with asyncio.timeout(20):
            async for message in stream:
                streamed += [t.sequence for t in message.trades]
                if len(streamed) >= 5:
                    break
        stream.cancel()
        async with first.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT symbol, timeframe, start_ns, open, high, low, close, volume, notional, trade_count, closed "
                "FROM bars"
            )
    assert_bars_match(list(rows), ticks)
    # The process without a feed streams the ticks it relays from the topic, in order.
    assert streamed == sorted(streamed) and streamed[0] > 50_000


async def ticks_between(pool: Any, low_ns: int, high_ns: int) -> int:
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM ticks WHERE ts_ns >= $1 AND ts_ns < $2", low_ns, high_ns
        )
    return int(count)


async def test_a_restart_goes_on_from_the_stored_prices_now_without_history(
    scenario: Scenario,
) -> None:
    """A simulated past would land on minutes that already have bars, and the instruments'
    own start prices would jump back from where the market had gone."""
    feed = {"marketdata_feed": "simulator", "marketdata_rate": 1.0,
            "marketdata_simulator_history_s": 120.0}  # fmt: skip
    started_ns = time.time_ns()
    async with scenario.running(**feed) as first:
        # The past two minutes, published at once and ingested.
        await eventually(
            lambda: positive(ticks_between(first.pool, started_ns - 120 * S, started_ns - 100 * S))
        )
    stopped_ns = time.time_ns()
    conn = await asyncpg.connect(scenario.database_url)
    try:
        # Where AAPL had gone: far from its start price, so a jump back shows.
        await conn.execute(
            "INSERT INTO marketdata.bars VALUES ('AAPL', '1Sec', $1, 400, 400, 400, 400, 1, 400, 1, true)"
            " ON CONFLICT (symbol, timeframe, start_ns)"
            " DO UPDATE SET open = 400, high = 400, low = 400, close = 400",
            stopped_ns - stopped_ns % S,
        )
    finally:
        await conn.close()
    await asyncio.sleep(1.0)  # a second no run covers: only a history could fill it
    restarted_ns = time.time_ns()
    async with scenario.running(**feed) as second:
        await eventually(lambda: positive(ticks_between(second.pool, restarted_ns, 2**62)))
        assert await ticks_between(second.pool, stopped_ns, restarted_ns) == 0
        async with second.pool.acquire() as conn:
            bid = await eventually(
                lambda: conn.fetchval(
                    "SELECT bid FROM ticks WHERE symbol = 'AAPL' AND bid IS NOT NULL"
                    " AND ts_ns >= $1 ORDER BY ts_ns LIMIT 1",
                    restarted_ns,
                )
            )
        assert 396 < bid < 404, bid


async def positive(count: Awaitable[int]) -> int | None:
    return (await count) or None
