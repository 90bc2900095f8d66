"""Fixtures of the backtest integration tests: the whole mesh from `stack`, reached
through its gateway, with history seeded into market data's bars.

Market data's simulator writes bars of today only; the history a backtest needs is
written here into its `bars` table, as its ingest would have stored it, before the
backtest service asks market data for it over gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import grpc
import polars as pl
import pytest
import pytest_asyncio

from cift.stack.launcher import StackInfo
from tests.e2e.e2e_client import Rest, Trader, grpc_target, register_and_login

SYMBOL = "GOOG"
# A symbol of the universe no other test writes minute bars of.
LONG_SYMBOL = "NFLX"
LONG_START = datetime(2021, 1, 4, tzinfo=UTC)
LONG_BARS = 300_000


@pytest.fixture(scope="session")
def gateway_url(stack: StackInfo) -> str:
    assert stack.gateway_url is not None, "the stack fixture runs without its gateway"
    return stack.gateway_url


@pytest.fixture(scope="session")
def rest(gateway_url: str) -> Rest:
    return Rest(gateway_url)


@pytest.fixture
def trader(rest: Rest) -> Trader:
    return register_and_login(rest, "backtester")


@pytest.fixture(scope="session")
def channel(gateway_url: str) -> Iterator[grpc.Channel]:
    """Native gRPC (h2c) to the gateway's one port."""
    with grpc.insecure_channel(grpc_target(gateway_url)) as opened:
        yield opened


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(stack: StackInfo) -> AsyncIterator[asyncpg.Connection]:
    """The stack's database, for seeding market data and checking what was stored."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        yield conn
    finally:
        await conn.close()


def goog_daily() -> pl.DataFrame:
    """backtesting.py's bundled GOOG daily bars, 2004-2013, in the library's columns."""
    from backtesting.test import GOOG

    return pl.from_pandas(GOOG.reset_index().rename(columns={"index": "timestamp"})).rename(
        str.lower
    )


async def store_bars(
    db: asyncpg.Connection, symbol: str, timeframe: str, bars: pl.DataFrame
) -> None:
    """Write closed bars as market data's ingest stores them (idempotent)."""
    start_ns = bars.get_column("timestamp").cast(pl.Datetime("ns")).dt.epoch("ns").to_list()
    rows = [
        (symbol, timeframe, ts, o, h, low, c, v, c * v, 1, True)
        for ts, o, h, low, c, v in zip(
            start_ns,
            *(
                bars.get_column(name).cast(pl.Float64).to_list()
                for name in ("open", "high", "low", "close", "volume")
            ),
            strict=True,
        )
    ]
    await db.execute(
        "DELETE FROM marketdata.bars WHERE symbol = $1 AND timeframe = $2 "
        "AND start_ns >= $3 AND start_ns <= $4",
        symbol,
        timeframe,
        min(start_ns),
        max(start_ns),
    )
    await db.copy_records_to_table(
        "bars",
        schema_name="marketdata",
        records=rows,
        columns=[
            "symbol",
            "timeframe",
            "start_ns",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "notional",
            "trade_count",
            "closed",
        ],
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def goog(db: asyncpg.Connection) -> pl.DataFrame:
    """GOOG's daily history stored in market data; the frame as the library reads it."""
    bars = goog_daily()
    await store_bars(db, SYMBOL, "1Day", bars)
    return bars


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def long_history(db: asyncpg.Connection) -> int:
    """Minute bars enough to keep the event engine busy for seconds (to cancel a run)."""
    from cift.backtest.synthetic import random_walk_bars

    bars = random_walk_bars(LONG_BARS, start=LONG_START.strftime("%Y-%m-%d"))
    await store_bars(db, LONG_SYMBOL, "1Min", bars)
    return LONG_BARS
