"""1-minute OHLCV+VWAP bars from 10M trades of 100 symbols: our one-pass Numba kernel
(the batch path, `services.marketdata.bars.aggregate_trades`) against pandas and Polars.
The kernel cuts the trades into chunks at bucket edges and fills them on the calling
thread and the free cores (`services.marketdata.bars_grid`); Polars uses every core
too, pandas one.

Run: python bench/bench_marketdata_bars.py [--ticks 10000000] [--rounds 5]
Trades arrive in time order with the symbols interleaved, as a feed delivers them. Each
method is timed on two inputs: symbols as strings, and symbols dictionary-encoded
(Categorical, as Parquet and Arrow keep them); every method gets the same frame. Rounds
are interleaved, so a noisy neighbour slows all alike. Before any timing, every result is
checked equal to pandas': open/high/low/close/volume/count exactly, VWAP to 1e-12.
Ratios to pandas are given three ways: median over median, the median of per-round
ratios, and minimum over minimum. Also times the incremental BarBuilder (the live per-trade path) on a slice.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import machine, record
from cift.parallel_tasks import HELPERS
from services.marketdata.bars import (
    TIMEFRAMES,
    BarBuilder,
    _aggregate_with_polars,
    aggregate_trades,
    parse_timeframe,
)

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
    # observed=True: only the (symbol, minute) pairs that occur, as the others compute.
    grouped = work.groupby(["symbol", "start_ns"], sort=True, observed=True)
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


def check_equal(ours: pl.DataFrame, reference: pd.DataFrame, what: str) -> None:
    assert ours.height == len(reference), what
    for column in ("start_ns", "open", "high", "low", "close", "volume", "trade_count"):
        same = ours[column].to_numpy() == reference[column].to_numpy()
        assert same.all(), f"{what}: {column} differs from pandas"
    assert (ours["symbol"].cast(pl.String).to_numpy() == reference["symbol"].astype(str)).all()
    assert np.allclose(ours["vwap"].to_numpy(), reference["vwap"].to_numpy(), rtol=1e-12), what


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"# python bench/bench_marketdata_bars.py --ticks {args.ticks} --symbols {args.symbols} --rounds {args.rounds}"
    )
    minute = parse_timeframe("1Min")
    as_strings = make_trades(args.ticks, args.symbols)
    inputs = {
        "string": as_strings,
        "categorical": as_strings.with_columns(pl.col("symbol").cast(pl.Categorical)),
    }
    methods: dict[str, Callable[[pl.DataFrame, pd.DataFrame], object]] = {
        "pandas groupby": lambda _, frame_pd: pandas_bars(frame_pd),
        "polars group_by": lambda frame, _: _aggregate_with_polars(frame, minute),
        "cift one-pass kernel": lambda frame, _: aggregate_trades(frame, minute),
    }
    pandas_inputs = {kind: frame.to_pandas() for kind, frame in inputs.items()}
    reference = pandas_bars(pandas_inputs["string"])
    for kind, frame in inputs.items():
        check_equal(aggregate_trades(frame, minute), reference, f"kernel on {kind}")
        check_equal(_aggregate_with_polars(frame, minute), reference, f"polars on {kind}")
        # pandas orders categorical groups by category, not by name: sort before comparing.
        by_pandas = pl.from_pandas(pandas_bars(pandas_inputs[kind]))
        by_pandas = by_pandas.with_columns(pl.col("symbol").cast(pl.String)).sort(
            "symbol", "start_ns"
        )
        check_equal(by_pandas, reference, f"pandas on {kind}")
    times: dict[tuple[str, str], list[float]] = {
        (kind, name): [] for kind in inputs for name in methods
    }
    for _ in range(args.rounds):
        for kind, frame in inputs.items():
            for name, method in methods.items():
                started = time.perf_counter()
                method(frame, pandas_inputs[kind])
                times[(kind, name)].append(time.perf_counter() - started)

    live_n = min(1_000_000, args.ticks)
    live = as_strings.head(live_n)
    rows = list(
        zip(*(live[c].to_list() for c in ("symbol", "ts_ns", "price", "size")), strict=True)
    )

    def incremental() -> None:
        builder = BarBuilder(TIMEFRAMES)
        on_trade = builder.on_trade
        for symbol, ts, price, size in rows:
            on_trade(symbol, ts, price, size)

    started = time.perf_counter()
    incremental()
    live_s = time.perf_counter() - started

    print(
        f"# {args.ticks:,} trades, {args.symbols} symbols -> {reference.shape[0]:,} one-minute "
        f"OHLCV+VWAP bars; every result equal to pandas'"
    )
    print(
        f"{'symbols as':<13}{'method':<24}{'median s':>10}{'min s':>9}{'Mticks/s':>10}"
        f"{'x pandas':>10}{'x polars':>10}{'x pandas paired':>17}{'x pandas by min':>17}"
    )
    figures: dict[str, dict[str, float]] = {}
    for kind in inputs:
        base = statistics.median(times[(kind, "pandas groupby")])
        polars = statistics.median(times[(kind, "polars group_by")])
        pandas_times = times[(kind, "pandas groupby")]
        for name in methods:
            med = statistics.median(times[(kind, name)])
            # Per round, pandas' time over this method's (timed moments apart, so a
            # neighbour's burst mostly hits both), and the ratio of the minima.
            paired = statistics.median(
                b / t for b, t in zip(pandas_times, times[(kind, name)], strict=True)
            )
            by_min = min(pandas_times) / min(times[(kind, name)])
            print(
                f"{kind:<13}{name:<24}{med:>10.3f}{min(times[(kind, name)]):>9.3f}"
                f"{args.ticks / med / 1e6:>10.1f}{base / med:>10.1f}{polars / med:>10.2f}"
                f"{paired:>17.1f}{by_min:>17.1f}"
            )
            figures[f"{kind} / {name}"] = {
                "median_s": med,
                "x_pandas": base / med,
                "x_polars": polars / med,
                "x_pandas_paired": paired,
                "x_pandas_min": by_min,
            }
    print(
        f"{'string':<13}{'incremental (live)':<24}{live_s:>10.3f}{'':>9}{live_n / live_s / 1e6:>10.2f}"
        f"{'-':>10}{'-':>10}"
    )
    print(f"# incremental: 6 timeframes at once, pure Python, the first {live_n:,} trades")
    print(f"# cift kernel and Polars on up to {HELPERS + 1} cores, pandas on one")
    print(f"# machine: {machine()}")
    record(
        "bench_marketdata_bars", {"ticks": args.ticks, "symbols": args.symbols, "methods": figures}
    )


if __name__ == "__main__":
    main()
