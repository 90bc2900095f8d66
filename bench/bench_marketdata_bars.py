"""1-minute OHLCV+VWAP bars from 10M trades of 100 symbols: Polars lazy vs pandas.

Run: python bench/bench_marketdata_bars.py [--ticks 10000000] [--rounds 3]
Also times the incremental BarBuilder (the live per-trade path) on a slice, and
checks that both batch results agree before timing anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.marketdata.bars import TIMEFRAMES, BarBuilder, aggregate_trades, parse_timeframe

MINUTE_NS = 60_000_000_000


def make_trades(count: int, symbols: int) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    # About 6.5 hours of trading: timestamps increase, symbols interleave.
    ts = np.cumsum(rng.integers(1, 4_680_000, count)).astype(np.int64) + 1_700_000_000 * 10**9
    sym = rng.integers(0, symbols, count)
    price = np.round(100.0 + np.cumsum(rng.normal(0, 0.01, count)) / 10.0, 2)
    size = rng.integers(1, 500, count).astype(np.float64)
    names = np.array([f"S{i:03d}" for i in range(symbols)])
    return pl.DataFrame({"symbol": names[sym], "ts_ns": ts, "price": price, "size": size})


def pandas_bars(frame: pd.DataFrame) -> pd.DataFrame:
    work = frame.assign(
        start_ns=frame["ts_ns"] - frame["ts_ns"] % MINUTE_NS,
        notional=frame["price"] * frame["size"],
    )
    grouped = work.groupby(["symbol", "start_ns"], sort=True)
    out = grouped.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        notional=("notional", "sum"),
        trade_count=("price", "size"),
    )
    out["vwap"] = out["notional"] / out["volume"]
    return out.reset_index()


def polars_eager(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.with_columns((pl.col("ts_ns") - pl.col("ts_ns") % MINUTE_NS).alias("start_ns"))
        .group_by("symbol", "start_ns")
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            (pl.col("price") * pl.col("size")).sum().alias("notional"),
            pl.len().alias("trade_count"),
        )
        .sort("symbol", "start_ns")
    )


def timed(fn: object, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trades = make_trades(args.ticks, args.symbols)
    trades_pd = trades.to_pandas()
    minute = parse_timeframe("1Min")

    lazy = aggregate_trades(trades.lazy(), minute)
    reference = pandas_bars(trades_pd)
    assert lazy.height == len(reference)
    assert np.allclose(lazy["vwap"].to_numpy(), reference["vwap"].to_numpy(), rtol=1e-12)
    assert (lazy["close"].to_numpy() == reference["close"].to_numpy()).all()

    results = {
        "pandas groupby": timed(lambda: pandas_bars(trades_pd), args.rounds),
        "polars eager": timed(lambda: polars_eager(trades), args.rounds),
        "polars lazy": timed(lambda: aggregate_trades(trades.lazy(), minute), args.rounds),
    }
    live_n = min(1_000_000, args.ticks)
    live = trades.head(live_n)
    rows = list(
        zip(*(live[c].to_list() for c in ("symbol", "ts_ns", "price", "size")), strict=True)
    )

    def incremental() -> None:
        builder = BarBuilder(TIMEFRAMES)
        on_trade = builder.on_trade
        for symbol, ts, price, size in rows:
            on_trade(symbol, ts, price, size)

    live_times = timed(incremental, 1)

    print(
        f"# python bench/bench_marketdata_bars.py --ticks {args.ticks} --symbols {args.symbols} --rounds {args.rounds}"
    )
    print(
        f"# {args.ticks:,} trades, {args.symbols} symbols -> {lazy.height:,} one-minute OHLCV+VWAP bars"
    )
    print(f"{'method':<34}{'median s':>10}{'min s':>10}{'Mticks/s':>10}{'x pandas':>10}")
    base = statistics.median(results["pandas groupby"])
    for name, times in results.items():
        med = statistics.median(times)
        print(
            f"{name:<34}{med:>10.3f}{min(times):>10.3f}{args.ticks / med / 1e6:>10.1f}{base / med:>10.1f}"
        )
    med = statistics.median(live_times)
    print(
        f"{'incremental, 6 timeframes (live)':<34}{med:>10.3f}{min(live_times):>10.3f}{live_n / med / 1e6:>10.2f}{'-':>10}"
    )
    print(
        f"# incremental path timed on the first {live_n:,} trades (pure Python, one call per trade)"
    )


if __name__ == "__main__":
    main()
