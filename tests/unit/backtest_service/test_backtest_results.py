"""The library's results as the service keeps them: bars in, trades and equity out."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from cift.backtest import run_backtest
from cift.backtest.synthetic import random_walk_bars
from cift.runtime.errors import InvalidArgument
from services.backtest.engine import LibraryEngine, equity_points, thinned, trade_records
from services.backtest.history import bars_frame, check_coverage
from services.backtest.model import Progress, RunSpec, RunStatus
from services.backtest.runs import Tracker

SPEC = RunSpec(
    strategy="sma_cross",
    params={},
    symbols=("AAA", "BBB"),
    timeframe="1Min",
    start=datetime(2020, 1, 1, tzinfo=UTC),
    end=datetime(2020, 2, 1, tzinfo=UTC),
    cash=Decimal("10000"),
    commission=Decimal("0.001"),
    engine="vector",
)


def exported(frame: pl.DataFrame) -> bytes:
    """Bars as market data's ExportBars writes them (start_time, vwap, trade_count)."""
    out = io.BytesIO()
    frame.rename({"timestamp": "start_time"}).with_columns(
        pl.col("start_time").dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC")),
        pl.col("close").alias("vwap"),
        pl.lit(1, pl.Int64).alias("trade_count"),
    ).write_parquet(out)
    return out.getvalue()


def test_exported_bars_become_the_librarys_columns_oldest_first() -> None:
    one = random_walk_bars(3, symbol="BBB")
    two = random_walk_bars(3, symbol="AAA", seed=8)
    bars = bars_frame(exported(pl.concat([one, two])))
    assert bars.columns == ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
    assert bars.get_column("symbol").to_list() == ["AAA", "BBB"] * 3
    check_coverage(bars, SPEC)


def test_an_empty_export_or_a_missing_symbol_is_an_empty_range() -> None:
    with pytest.raises(InvalidArgument, match="the range is empty"):
        check_coverage(bars_frame(b""), SPEC)
    only_one = bars_frame(exported(random_walk_bars(3, symbol="AAA")))
    with pytest.raises(InvalidArgument, match=r"holds no 1Min bars .* of BBB"):
        check_coverage(only_one, SPEC)


@pytest.mark.parametrize(("count", "most"), [(10, 20), (10, 10), (1000, 7), (2, 2)])
def test_thinning_keeps_first_and_last_and_at_most_the_limit(count: int, most: int) -> None:
    kept = thinned(count, most)
    assert kept[0] == 0 and kept[-1] == count - 1
    assert len(kept) == min(count, most)
    assert np.all(np.diff(kept) > 0)


def test_trades_and_equity_become_decimals_with_aware_utc_times() -> None:
    bars = random_walk_bars(2000, symbol="AAA")
    result = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    trades = trade_records(result.trades)
    assert len(trades) == result.trades.height > 0
    first, row = trades[0], result.trades.row(0, named=True)
    assert first.entry_time.tzinfo is UTC
    assert first.qty == abs(Decimal(repr(row["size"])))
    assert first.pnl == round(Decimal(repr(row["pnl"])), 2)
    points = equity_points(result.equity, 100)
    assert len(points) == 100
    assert points[-1].equity == round(Decimal(repr(result.stats["final_equity"])), 2)


def test_the_engine_resolves_defaults_and_refuses_what_the_library_refuses() -> None:
    engine = LibraryEngine(max_equity_points=10)
    resolved = engine.resolve(SPEC)
    assert resolved.params["fast"] == 10 and resolved.params["slow"] == 30
    with pytest.raises(InvalidArgument, match="fast"):
        engine.resolve(RunSpec(**{**SPEC.__dict__, "params": {"fast": 40, "slow": 30}}))
    with pytest.raises(InvalidArgument, match="commission"):
        engine.resolve(RunSpec(**{**SPEC.__dict__, "commission": Decimal("0.5")}))
    names = [info.name for info in engine.catalog()]
    assert names == sorted(names) and "sma_cross" in names


async def test_watchers_see_each_change_and_always_the_last() -> None:
    tracker = Tracker(Progress("r", RunStatus.QUEUED, 0.0, "queued"))
    seen: list[Progress] = []

    async def watch() -> None:
        async for progress in tracker.updates():
            seen.append(progress)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    tracker.update(RunStatus.RUNNING, 0.5, "running")
    await asyncio.sleep(0)
    tracker.update(RunStatus.SUCCEEDED, 1.0, "done")
    tracker.update(RunStatus.RUNNING, 0.7, "late")  # after the end: ignored
    await asyncio.wait_for(watcher, 1)
    assert [(p.status, p.progress) for p in seen] == [
        (RunStatus.QUEUED, 0.0),
        (RunStatus.RUNNING, 0.5),
        (RunStatus.SUCCEEDED, 1.0),
    ]
