"""Several ingest processes in one consumer group: each writes only what it holds.

Two `Ingest` instances stand for two processes, each holding one partition of a
topic, on one real PostgreSQL database and Redis. Batches are handed to them
directly (no broker), in an order that once made one process overwrite the other's
progress row with its stale copy: a deadlock under load and a reload every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from cift.marketdata.v1 import marketdata_pb2
from cift.runtime.kafka import Records
from services.marketdata.events import TickMessage, tick_event_bytes
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.ingest import STALE_RELOADS, Ingest
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from tests.integration.marketdata.marketdata_helpers import Scenario

pytestmark = pytest.mark.integration

TOPIC = "marketdata.ticks.sharing-test"
START_NS = 1_704_205_800 * 1_000_000_000


def stamped(symbol: str, count: int, sequence_base: int) -> list[TickMessage]:
    ticks = [
        t
        for t in Simulator(
            default_universe(), seed=3, rate_per_symbol=50.0, start_ns=START_NS
        ).next_events(count * 60)
        if t.symbol == symbol
    ][:count]
    runner = FeedRunner(
        NoTicks(), None, lambda _: None, interval_s=0.01, sequence_base=sequence_base
    )
    return runner.stamp(ticks)


def batch(partition: int, messages: Sequence[TickMessage]) -> Records:
    return Records(
        TOPIC, [partition] * len(messages), [tick_event_bytes(message) for message in messages]
    )


async def saved_progress(pool: Any) -> dict[int, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT partition, sequence FROM ingest_progress WHERE topic = $1", TOPIC
        )
    return {row["partition"]: row["sequence"] for row in rows}


def stale_reloads() -> float:
    return float(STALE_RELOADS._value.get())


async def test_each_ingest_process_saves_only_its_own_partitions_progress(
    scenario: Scenario,
) -> None:
    aapl = stamped("AAPL", 300, sequence_base=1_000)
    msft = stamped("MSFT", 300, sequence_base=9_000)
    async with scenario.running(marketdata_feed="none") as service:
        pool, redis = service.pool, service.context.redis

        def ingest(partition: int) -> Ingest:
            return Ingest(
                pool,
                redis,
                partition_days=1,
                topic=TOPIC,
                bars_topic=scenario.bars_topic,
                holds=lambda topic, held: topic == TOPIC and held == partition,
            )

        first, second = ingest(0), ingest(1)
        await second.on_ticks(batch(1, msft[:100]))
        # `first` loads the progress rows now, including partition 1's.
        await first.on_ticks(batch(0, aapl[:100]))
        await second.on_ticks(batch(1, msft[100:200]))
        before = stale_reloads()
        await first.on_ticks(batch(0, aapl[100:200]))
        assert await saved_progress(pool) == {
            0: aapl[199].sequence,
            1: msft[199].sequence,
        }
        await second.on_ticks(batch(1, msft[200:]))
        assert stale_reloads() == before
        assert await saved_progress(pool) == {0: aapl[199].sequence, 1: msft[-1].sequence}
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM ticks") == 500

    # Each process answers latest quotes only for the symbols of the partitions it holds.
    assert first.local_quote("AAPL") is not None and first.local_quote("MSFT") is None
    assert second.local_quote("MSFT") is not None and second.local_quote("AAPL") is None


async def test_a_latest_quote_stops_answering_locally_once_its_partition_moves(
    scenario: Scenario,
) -> None:
    held = {0}
    async with scenario.running(marketdata_feed="none") as service:
        ingest = Ingest(
            service.pool,
            service.context.redis,
            partition_days=1,
            topic=TOPIC,
            bars_topic=scenario.bars_topic,
            holds=lambda _topic, partition: partition in held,
        )
        ticks = stamped("AAPL", 40, sequence_base=1)
        await ingest.on_ticks(batch(0, ticks))
    last_quote = [t for t in ticks if isinstance(t, marketdata_pb2.Quote)][-1]
    local = ingest.local_quote("AAPL")
    assert local is not None and local.sequence == last_quote.sequence
    held.clear()  # a rebalance gave partition 0 to another process
    assert ingest.local_quote("AAPL") is None


async def test_malformed_and_replayed_records_are_skipped_and_the_rest_written_exactly(
    scenario: Scenario,
) -> None:
    ticks = stamped("NVDA", 60, sequence_base=50)
    async with scenario.running(marketdata_feed="none") as service:
        ingest = Ingest(
            service.pool,
            service.context.redis,
            partition_days=1,
            topic=TOPIC,
            bars_topic=scenario.bars_topic,
        )
        first = batch(0, ticks[:40])
        # A redelivery of the first 40 and 20 new ticks, one of each garbled.
        again = batch(0, ticks)
        again.values[5] = again.values[50] = b"\x0a\x05garbage"
        await ingest.on_ticks(first)
        await ingest.on_ticks(again)
        async with service.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT sequence, ts_ns, symbol, kind, bid, ask, bid_size, ask_size, price, size "
                "FROM ticks WHERE symbol = 'NVDA' ORDER BY sequence"
            )
    written = ticks[:50] + ticks[51:]
    assert [r["sequence"] for r in rows] == [t.sequence for t in written]
    for row, tick in zip(rows, written, strict=True):
        stamp = tick.timestamp.seconds * 1_000_000_000 + tick.timestamp.nanos
        want: tuple[float | None, ...]
        if isinstance(tick, marketdata_pb2.Quote):
            want = (1, tick.bid, tick.ask, tick.bid_size, tick.ask_size, None, None)
        else:
            want = (2, None, None, None, None, tick.price, tick.size)
        got = tuple(row[c] for c in ("kind", "bid", "ask", "bid_size", "ask_size", "price", "size"))
        assert row["ts_ns"] == stamp and got == want
