"""Synthetic bars for benchmarks, tests and demos: a reproducible random walk.

Prices are in cents like a real feed's; each bar opens at the previous close and
has a wick on each side, so stops and limits inside a bar have something to hit.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def random_walk_bars(
    n: int, *, seed: int = 7, symbol: str | None = None, start: str = "2020-01-01"
) -> pl.DataFrame:
    """`n` one-minute bars of a log-normal walk from 100.00 (columns as run_backtest takes)."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.002, n))), 2)
    open_ = np.r_[close[:1], close[:-1]]
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 0.2, n), 2)
    low = np.round(np.maximum(np.minimum(open_, close) - rng.uniform(0, 0.2, n), 0.01), 2)
    frame = pl.DataFrame(
        {
            "timestamp": np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(60, "s"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(100, 10_000, n).astype(np.float64),
        }
    )
    return frame if symbol is None else frame.with_columns(pl.lit(symbol).alias("symbol"))
