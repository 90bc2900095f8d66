"""Bars from trades in one pass, in arrival order: the batch path's Numba kernel.

Trades arrive ordered by time across all symbols, not grouped by symbol. A sort or a
hash group-by (what pandas and Polars do) touches every trade several times; this
kernel touches each once: it keeps, per symbol, the row of the bar being built and
starts a new row when a trade falls in a later bucket. Only the finished bars (a few
per symbol and timeframe, not one per trade) are sorted afterwards.

Open and close are the first and last trade of a bucket, high/low its extremes, volume
and notional its sums in arrival order, VWAP notional / volume: the same figures as
`bars.aggregate_trades` computed the Polars way (tests/unit/marketdata checks both,
and pandas, on the same trades). It never does I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

# Returned when a symbol's trades go back in time (into a bucket already closed).
OUT_OF_ORDER = -1
# Returned when more bars open than `capacity` allows.
FULL = -2


@njit(cache=True, nogil=True)  # type: ignore[misc]
def aggregate_in_arrival_order(
    codes: npt.NDArray[np.integer[Any]],
    ts_ns: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    bucket_ns: int,
    symbol_count: int,
    capacity: int,
) -> tuple[
    int,
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
]:
    """(rows, first index, symbol code, start_ns, open, high, low, close, volume,
    notional, count).

    `codes[i]` is trade i's symbol as 0..symbol_count-1 (codes need not all occur);
    `first_index[code]` is the first trade of that symbol, -1 if none. Bars are numbered in the order
    they open; `rows` of the `capacity` slots are used, or OUT_OF_ORDER if some symbol's
    trade falls in a bucket earlier than one it already has, or FULL if more than
    `capacity` bars open (then nothing is usable).
    """
    row_of = np.full(symbol_count, -1, np.int64)
    start_of = np.zeros(symbol_count, np.int64)
    end_of = np.zeros(symbol_count, np.int64)
    first_index = np.full(symbol_count, -1, np.int64)
    bar_symbol = np.empty(capacity, np.int64)
    bar_start = np.empty(capacity, np.int64)
    bar_open = np.empty(capacity, np.float64)
    bar_high = np.empty(capacity, np.float64)
    bar_low = np.empty(capacity, np.float64)
    bar_close = np.empty(capacity, np.float64)
    bar_volume = np.empty(capacity, np.float64)
    bar_notional = np.empty(capacity, np.float64)
    bar_count = np.empty(capacity, np.int64)
    rows = 0
    for i in range(ts_ns.shape[0]):
        symbol = codes[i]
        ts = ts_ns[i]
        p = price[i]
        q = size[i]
        row = row_of[symbol]
        # Most trades fall in their symbol's open bucket: two compares, no division.
        if row >= 0 and start_of[symbol] <= ts < end_of[symbol]:
            if p > bar_high[row]:
                bar_high[row] = p
            if p < bar_low[row]:
                bar_low[row] = p
            bar_close[row] = p
            bar_volume[row] += q
            bar_notional[row] += p * q
            bar_count[row] += 1
            continue
        start = ts - ts % bucket_ns  # floor, also before 1970 (Python's % semantics)
        if (row >= 0 and start < start_of[symbol]) or rows == capacity:
            return (
                OUT_OF_ORDER if rows < capacity else FULL,
                first_index,
                bar_symbol,
                bar_start,
                bar_open,
                bar_high,
                bar_low,
                bar_close,
                bar_volume,
                bar_notional,
                bar_count,
            )
        row = rows
        rows += 1
        if row_of[symbol] < 0:
            first_index[symbol] = i
        row_of[symbol] = row
        start_of[symbol] = start
        end_of[symbol] = start + bucket_ns
        bar_symbol[row] = symbol
        bar_start[row] = start
        bar_open[row] = p
        bar_high[row] = p
        bar_low[row] = p
        bar_close[row] = p
        bar_volume[row] = q
        bar_notional[row] = p * q
        bar_count[row] = 1
    return (
        rows,
        first_index,
        bar_symbol,
        bar_start,
        bar_open,
        bar_high,
        bar_low,
        bar_close,
        bar_volume,
        bar_notional,
        bar_count,
    )
