"""Parameter sweeps: every valid grid point, run in worker processes, ranked by a stat."""

from __future__ import annotations

import polars as pl
import pytest

from cift.backtest import run_backtest
from cift.backtest.sweep import sweep, walk_forward
from cift.runtime.errors import InvalidArgument


def test_sweep_ranks_valid_points_by_the_stat(goog: pl.DataFrame) -> None:
    table = sweep(goog, "sma_cross", {"fast": [5, 10, 30], "slow": [20, 30]},
                  commission=0.002, sort_by="final_equity", workers=2)  # fmt: skip
    # fast >= slow points (30/20, 30/30) are not valid parameter sets and are skipped.
    assert sorted(zip(table["fast"], table["slow"], strict=True)) == [
        (5, 20), (5, 30), (10, 20), (10, 30)
    ]  # fmt: skip
    equity = table["final_equity"].to_list()
    assert equity == sorted(equity, reverse=True)
    row = table.filter((pl.col("fast") == 10) & (pl.col("slow") == 30))
    single = run_backtest(goog, "sma_cross", {"fast": 10, "slow": 30}, commission=0.002)
    assert row["final_equity"][0] == single.stats["final_equity"]


def test_sweep_refuses_unknown_params_and_stats(goog: pl.DataFrame) -> None:
    with pytest.raises(InvalidArgument, match="Unknown parameter speed"):
        sweep(goog, "sma_cross", {"speed": [1, 2]}, workers=1)
    with pytest.raises(InvalidArgument, match="Cannot sort by 'luck'"):
        sweep(goog, "sma_cross", {"fast": [5]}, sort_by="luck", workers=1)
    with pytest.raises(InvalidArgument, match="No point of the grid is a valid"):
        sweep(goog, "sma_cross", {"fast": [50], "slow": [20]}, workers=1)


def test_sweep_leaves_out_points_whose_periods_outrun_the_bars(goog: pl.DataFrame) -> None:
    """On 40 bars slow=50 can never trade: left out, as an invalid point is; if every
    point is, the sweep says why instead of running nothing."""
    short = goog.head(40)
    table = sweep(short, "sma_cross", {"fast": [5], "slow": [20, 30, 50]}, workers=1)
    assert sorted(table["slow"].to_list()) == [20, 30]
    with pytest.raises(
        InvalidArgument,
        match=r"No point of the grid can trade on these bars; sma_cross \(.*slow=50.*\) can "
        r"trade at bar 51 at the earliest .* these bars hold 40",
    ):
        sweep(short, "sma_cross", {"fast": [5], "slow": [50, 60]}, workers=1)


def test_walk_forward_reports_each_choice_on_the_next_window(goog: pl.DataFrame) -> None:
    table = walk_forward(goog, "sma_cross", {"fast": [5, 10], "slow": [20, 40]}, folds=3,
                         workers=1)  # fmt: skip
    assert table["fold"].to_list() == [0, 1, 2]
    size = goog.height // 4
    for fold, start in enumerate(table["start"].to_list()):
        assert start == str(goog["timestamp"][(fold + 1) * size])
