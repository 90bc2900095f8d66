"""A new simulator store's past: stored before the service serves, never published as live."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cift.marketdata.v1 import marketdata_pb2 as md
from cift.runtime.timestamps import timestamp
from tests.integration.marketdata.marketdata_helpers import METADATA, Scenario, eventually

pytestmark = pytest.mark.integration

S = 1_000_000_000
PAST_S = 300


async def test_the_past_is_stored_at_start_and_the_feed_publishes_only_the_live_market(
    scenario: Scenario,
) -> None:
    started_ns = time.time_ns()
    async with scenario.running(
        marketdata_feed="simulator",
        marketdata_rate=2.0,
        marketdata_simulator_history_s=float(PAST_S),
    ) as live:
        # Serving means the past is there: five minutes of minute bars, not one a minute.
        bars = await live.stub.GetBars(
            md.GetBarsRequest(
                symbol="AAPL", timeframe="1Min", start=timestamp(started_ns - 2 * PAST_S * S)
            ),
            metadata=METADATA,
        )
        starts = [b.start_time.ToNanoseconds() for b in bars.bars]
        assert len(starts) >= PAST_S // 60
        assert started_ns - (PAST_S + 60) * S <= starts[0] < started_ns - (PAST_S - 60) * S
        async with live.pool.acquire() as conn:
            past_trades = await conn.fetchval(
                "SELECT count(*) FROM ticks WHERE kind = 2 AND ts_ns < $1", started_ns
            )
        assert past_trades > 52 * PAST_S * 2 * 0.25 * 0.8  # symbols x s x ticks/s x trades

        # What streams and what the ingest takes for the latest quote (both fed from the
        # feed's ticks) is the market from now on, never the past.
        stream = live.stub.StreamQuotes(md.StreamQuotesRequest(), metadata=METADATA)
        quotes: list[Any] = []
        async with asyncio.timeout(15):
            async for message in stream:
                quotes += message.quotes
                if len(quotes) >= 50:
                    break
        stream.cancel()
        assert min(q.timestamp.ToNanoseconds() for q in quotes) >= started_ns

        async def latest() -> md.Quote | None:
            reply = await live.stub.GetLatestQuotes(
                md.GetLatestQuotesRequest(symbols=["AAPL"]), metadata=METADATA
            )
            return reply.quotes.get("AAPL")

        assert (await eventually(latest)).timestamp.ToNanoseconds() >= started_ns

        # The ingest resumed the past's open bars: the current hour's bar counts the
        # past's trades and the live ones alike (without the open bars it restarts at the
        # first live trade and writes over the past's).
        async def hour_bar_counts_every_trade() -> bool | None:
            async with live.pool.acquire() as conn:
                bar = await conn.fetchrow(
                    "SELECT start_ns, trade_count FROM bars WHERE symbol = 'AAPL'"
                    " AND timeframe = '1Hour' ORDER BY start_ns DESC LIMIT 1"
                )
                stored, live_trades = await conn.fetchrow(
                    "SELECT count(*), count(*) FILTER (WHERE ts_ns >= $2) FROM ticks"
                    " WHERE symbol = 'AAPL' AND kind = 2 AND ts_ns >= $1",
                    bar["start_ns"],
                    started_ns,
                )
            counted = live_trades > 0 and bar["trade_count"] == stored > live_trades
            return True if counted else None

        assert await eventually(hour_bar_counts_every_trade, timeout_s=30.0)
