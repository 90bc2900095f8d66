"""Bad input is refused with INVALID_ARGUMENT, with a message that says what to fix."""

from __future__ import annotations

import math
import re
from datetime import datetime

import polars as pl
import pytest

from cift.backtest import BUILTINS, BacktestCanceled, read_bars, run_backtest
from cift.backtest.synthetic import random_walk_bars
from cift.runtime.errors import InvalidArgument


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return random_walk_bars(500)


@pytest.mark.parametrize(
    ("strategy", "params", "message"),
    [
        ("buy_the_dip", None, "Unknown strategy 'buy_the_dip'; the built-ins are"),
        ("sma_cross", {"fastest": 3}, "Unknown parameter fastest for sma_cross; it takes fast"),
        ("sma_cross", {"fast": 30, "slow": 30}, "fast (30) must be shorter than slow (30)"),
        ("sma_cross", {"fast": 40, "slow": 30}, "fast (40) must be shorter than slow (30)"),
        ("sma_cross", {"fast": 2.5}, "fast of sma_cross must be a whole number"),
        ("sma_cross", {"fast": "ten"}, "fast of sma_cross must be a number, not 'ten'"),
        ("sma_cross", {"fast": 0}, "fast of sma_cross must be between 1 and"),
        ("rsi_reversion", {"lower": 80}, "lower (80) must be below upper (70)"),
        ("macd_cross", {"fast": 26, "slow": 12}, "fast (26) must be shorter than slow (12)"),
        (
            "bbands_breakout",
            {"deviations": math.inf},
            "deviations of bbands_breakout must be finite",
        ),
    ],
)
def test_bad_strategy_or_params_are_refused(
    bars: pl.DataFrame, strategy: str, params: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_backtest(bars, strategy, params)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.head(0), "The bars are empty"),
        (lambda b: b.drop("close"), "lack the column\\(s\\) close"),
        (lambda b: b.drop("timestamp", "volume"), "lack the column\\(s\\) timestamp, volume"),
        (lambda b: b.reverse(), "must be sorted by timestamp without repeats; row 1 goes back"),
        (
            lambda b: pl.concat([b.head(3), b.slice(2)]),
            "must be sorted by timestamp without repeats; row 3 repeats",
        ),
        (
            lambda b: b.with_columns(
                pl.when(pl.int_range(pl.len()) == 7)
                .then(float("nan"))
                .otherwise(pl.col("open"))
                .alias("open")
            ),
            "Column open has a missing or NaN value at row 7",
        ),
        (
            lambda b: b.with_columns(pl.col("close").cast(pl.String)),
            "Column close must be numeric",
        ),
        (
            lambda b: b.with_columns(
                pl.when(pl.int_range(pl.len()) == 4)
                .then(-1.0)
                .otherwise(pl.col("low"))
                .alias("low")
            ),
            "Column low has a zero or negative value at row 4",
        ),
    ],
)
def test_bad_bars_are_refused(bars: pl.DataFrame, change: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        run_backtest(change(bars), "sma_cross")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "gpu"}, "Unknown engine 'gpu'; use one of vector, event"),
        ({"cash": 0}, "cash must be a positive amount"),
        ({"cash": float("nan")}, "cash must be a positive amount"),
        ({"commission": -0.001}, "commission is a fraction of each fill's notional"),
        ({"commission": 0.5}, "commission is a fraction of each fill's notional"),
    ],
)
def test_bad_account_settings_are_refused(
    bars: pl.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        run_backtest(bars, "sma_cross", **kwargs)  # type: ignore[arg-type]


def test_a_symbol_not_in_the_bars_is_refused() -> None:
    bars = pl.concat([random_walk_bars(50, symbol="AAPL"), random_walk_bars(50, symbol="SPY")])
    with pytest.raises(InvalidArgument, match="No bars for symbol 'MSFT'; the data has AAPL, SPY"):
        run_backtest(bars, "sma_cross", symbol="MSFT")


def test_bars_too_few_for_the_strategy_to_trade_are_refused_with_what_to_change() -> None:
    """sma_cross 10/30 has its first signal at bar 30 and trades at bar 31's open."""
    with pytest.raises(
        InvalidArgument,
        match=re.escape(
            "sma_cross (fast=10, slow=30, short=1) can trade at bar 31 at the earliest (its "
            "first signal needs 30 bars, then the next bar's open); these bars hold 30: give "
            "it more bars, over a longer range or a shorter timeframe."
        ),
    ):
        run_backtest(random_walk_bars(30), "sma_cross", {"fast": 10, "slow": 30})
    for engine in ("vector", "event"):
        assert run_backtest(random_walk_bars(31), "sma_cross", engine=engine).stats["bars"] == 31
    # Several symbols: the longest decides; a shorter one just trades less.
    bars = pl.concat([random_walk_bars(31, symbol="AAPL"), random_walk_bars(5, symbol="SPY")])
    assert run_backtest(bars, "sma_cross").stats["bars"] == 31
    with pytest.raises(InvalidArgument, match=r"macd_cross \(.*\) can trade at bar 35 "):
        run_backtest(random_walk_bars(34), "macd_cross")


def test_a_bars_file_without_the_needed_columns_is_refused(tmp_path: object) -> None:
    path = tmp_path / "bars.csv"  # type: ignore[operator]
    pl.DataFrame({"timestamp": [datetime(2024, 1, 2)], "close": [1.0]}).write_csv(path)
    with pytest.raises(InvalidArgument, match="lack the column\\(s\\) open, high, low, volume"):
        run_backtest(read_bars(path), "sma_cross")


def test_csv_and_parquet_files_read_back_the_same_run(bars: pl.DataFrame, tmp_path: object) -> None:
    csv = tmp_path / "bars.csv"  # type: ignore[operator]
    parquet = tmp_path / "bars.parquet"  # type: ignore[operator]
    bars.rename({"timestamp": "Date", "close": "Close"}).write_csv(csv)
    bars.write_parquet(parquet)
    from_csv = run_backtest(read_bars(csv), "sma_cross", {"fast": 5, "slow": 20})
    from_parquet = run_backtest(read_bars(parquet), "sma_cross", {"fast": 5, "slow": 20})
    assert from_csv.stats == from_parquet.stats
    assert from_csv.trades.height > 0


def test_market_datas_exported_bars_run_as_they_come(bars: pl.DataFrame) -> None:
    """ExportBars' Parquet: start_time in UTC, a symbol, and vwap and trade_count besides."""
    exported = bars.select(
        pl.lit("AAPL").alias("symbol"),
        pl.col("timestamp").dt.replace_time_zone("UTC").alias("start_time"),
        "open", "high", "low", "close", "volume",
        pl.col("close").alias("vwap"),
        pl.lit(7).alias("trade_count"),
    )  # fmt: skip
    ran = run_backtest(exported, "sma_cross", {"fast": 5, "slow": 20})
    assert ran.stats == run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}).stats


def test_every_builtin_runs_on_both_engines_with_its_defaults(bars: pl.DataFrame) -> None:
    for name in BUILTINS:
        vector = run_backtest(bars, name, engine="vector")
        event = run_backtest(bars, name, engine="event")
        assert vector.stats["trades"] == event.stats["trades"], name
        assert vector.trades["entry_bar"].to_list() == event.trades["entry_bar"].to_list(), name


@pytest.mark.parametrize("engine", ["vector", "event"])
def test_progress_reaches_one_and_a_raising_callback_cancels(
    bars: pl.DataFrame, engine: str
) -> None:
    seen: list[float] = []
    run_backtest(bars, "sma_cross", engine=engine, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)

    def cancel(fraction: float) -> None:
        raise BacktestCanceled("canceled by its owner")

    with pytest.raises(BacktestCanceled, match="canceled by its owner"):
        run_backtest(bars, "sma_cross", engine=engine, progress=cancel)
