"""Bars from trades in one pass onto a (bucket x symbol) grid, split over the cores.

The batch path's fast case: trades whose time range spans few enough buckets that a
cell for every (bucket, symbol) pair fits in memory. A trade's cell is found without
a search (its bucket row plus its symbol's column), the cells of the bucket being
filled (a few KB) stay in L1, and the grid is already in time order within each
symbol, so only a gather of the occupied cells remains: no sort, no per-symbol
open-bar state to write out.

The trades are cut at bucket edges into chunks, filled into the same grid by the
calling thread and the free cores (`cift.parallel_tasks`). Cut at an edge, no bar
straddles two chunks when the trades are in time order across symbols (how a feed
delivers them), so every bar is summed by one thread in arrival order: the very
figures of a sequential pass, of Polars and of pandas
(tests/unit/marketdata/test_marketdata_bars_kernel.py). Should two chunks touch the
same bucket (trades out of time order across symbols), the grid is filled again by
one thread. Each chunk numbers the symbols it meets itself (no table shared between
threads); names join the chunks at the end.

Returns None, for the caller's general kernel, when the grid would be too large,
there are more symbols than a row holds, or a trade falls outside the first..last
trade's buckets. Never does I/O.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit

from cift.parallel_tasks import HELPERS, run_tasks
from services.marketdata.bars_kernel import (
    _EMPTY_SLOT,
    _INLINE,
    _LENGTH_MASK,
    _slot_shift,
    _view_slot,
)

# A cell's eight float64 words: one 64-byte cache line per (bucket, symbol).
CELL_WORDS = 8
_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _NOTIONAL, _COUNT = 0, 1, 2, 3, 4, 5, 6
# A chunk's outcome (the first word of its status, from `_fill`).
_FILLED = 0
_FULL = -2  # more distinct symbols than a grid row has columns
_UNUSABLE = -3  # a string symbol too long to be its view
_OUTSIDE = -4  # a trade outside the grid's buckets
# Per-chunk table of string views: slots per symbol at most 1/8 (short probe chains).
_SLOTS = 4096
MAX_COLUMNS = _SLOTS // 8
# A row's columns at first: the usual hundred-odd symbols; more once a chunk meets more.
_FIRST_COLUMNS = 128
# Below this many trades one thread fills the grid: starting the others costs more.
PARALLEL_MIN_TRADES = 1 << 18
# Chunks per core: more than one, so a core the scheduler lends late costs one
# chunk's wait at most (cift.parallel_tasks).
CHUNKS_PER_CORE = 2

_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U4 = np.uint64(4)
_CELL = np.uint64(CELL_WORDS)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _fill(
    views: npt.NDArray[np.uint64] | None,
    codes: npt.NDArray[np.integer[Any]] | None,
    ts_ns: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    origin_ns: int,
    bucket_ns: int,
    buckets: int,
    columns: int,
    grid: npt.NDArray[np.float64],
    lo: int,
    hi: int,
    keys: npt.NDArray[np.uint64],
    first: npt.NDArray[np.int64],
) -> tuple[int, int, int]:
    """Add trades lo..hi to the grid; (status, first bucket, last bucket touched).

    Symbols come from `views` (flat Arrow string views, two words a trade), numbered
    0.. in the order this chunk meets them through `keys` (flat [a, b, column, -]
    slots), or from `codes` (already 0..columns-1). `first[column]` gets the chunk's
    first trade of that symbol. Indices are unsigned and arrays flat: Numba then emits
    no negative-index fix-up or stride multiply per access (measured ~10 % a trade).
    A cell's count is a float64 word of the cell (exact to 2**53), so the grid is one
    array and a trade touches one cache line of it. The grid, `keys` and `first` come
    uninitialised: each chunk sets up its own, on its own core.
    """
    slot_mask = np.uint64(keys.shape[0] // 4 - 1)
    shift = _slot_shift(keys.shape[0] // 4)
    if views is not None:
        for unused in range(keys.shape[0] // 4):
            keys[unused * 4] = _EMPTY_SLOT
            keys[unused * 4 + 1] = 0
    first[:] = -1
    ucolumns = np.uint64(columns)
    ubucket = np.uint64(bucket_ns)
    distinct = 0
    start = np.int64(0)
    row = np.uint64(0)
    low_bucket = buckets
    high_bucket = -1
    # No bucket yet: every trade's time is "outside" the empty bucket at 0 of width 0.
    width = np.uint64(0)
    for j in range(lo, hi):
        i = np.uint64(j)
        if views is not None:
            a = views[i * _U2]
            b = views[i * _U2 + _U1]
            slot = np.uint64(_view_slot(a, b, shift))
            # The common case, a symbol seen before in its home slot: two compares.
            while keys[slot * _U4] != a or keys[slot * _U4 + _U1] != b:
                if keys[slot * _U4] == _EMPTY_SLOT:
                    if (a & _LENGTH_MASK) > _INLINE:
                        return _UNUSABLE, low_bucket, high_bucket
                    if distinct == columns:
                        return _FULL, low_bucket, high_bucket
                    keys[slot * _U4] = a
                    keys[slot * _U4 + _U1] = b
                    keys[slot * _U4 + _U2] = np.uint64(distinct)
                    first[distinct] = j
                    distinct += 1
                    break
                slot = (slot + _U1) & slot_mask
            column = keys[slot * _U4 + _U2]
        if codes is not None:
            column = np.uint64(codes[i])
            if column >= ucolumns:
                return _FULL, low_bucket, high_bucket
        ts = ts_ns[i]
        # Most trades fall in the bucket of the one before: one unsigned compare.
        if np.uint64(ts - start) >= width:
            bucket = (ts - origin_ns) // bucket_ns
            if bucket < 0 or bucket >= buckets:
                return _OUTSIDE, low_bucket, high_bucket
            start = origin_ns + bucket * bucket_ns
            width = ubucket
            row = np.uint64(bucket) * ucolumns
            # Rows are emptied as the chunk's span grows to cover them, so the span
            # [low_bucket, high_bucket] is always exactly the rows this chunk emptied.
            if high_bucket < 0:
                _empty_rows(grid, columns, bucket, bucket)
                low_bucket = high_bucket = bucket
            elif bucket > high_bucket:
                _empty_rows(grid, columns, high_bucket + 1, bucket)
                high_bucket = bucket
            elif bucket < low_bucket:
                _empty_rows(grid, columns, bucket, low_bucket - 1)
                low_bucket = bucket
        cell = (row + column) * _CELL
        p = price[i]
        q = size[i]
        count = grid[cell + np.uint64(_COUNT)]
        if count == 0.0:
            if codes is not None and first[column] < 0:
                first[column] = j
            grid[cell + np.uint64(_OPEN)] = p
            grid[cell + np.uint64(_HIGH)] = p
            grid[cell + np.uint64(_LOW)] = p
            grid[cell + np.uint64(_VOLUME)] = q
            grid[cell + np.uint64(_NOTIONAL)] = p * q
        else:
            high = grid[cell + np.uint64(_HIGH)]
            low = grid[cell + np.uint64(_LOW)]
            grid[cell + np.uint64(_HIGH)] = p if p > high else high
            grid[cell + np.uint64(_LOW)] = p if p < low else low
            grid[cell + np.uint64(_VOLUME)] += q
            grid[cell + np.uint64(_NOTIONAL)] += p * q
        grid[cell + np.uint64(_CLOSE)] = p
        grid[cell + np.uint64(_COUNT)] = count + 1.0
    return _FILLED, low_bucket, high_bucket


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _empty_rows(grid: npt.NDArray[np.float64], columns: int, low: int, high: int) -> None:
    """Mark the cells of bucket rows low..high empty (a count of 0 is all the fill and
    the gather read of an empty cell)."""
    for cell in range(low * columns, (high + 1) * columns):
        grid[cell * CELL_WORDS + _COUNT] = 0.0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _chunk_bounds(
    ts_ns: npt.NDArray[np.int64], bucket_ns: int, chunks: int
) -> npt.NDArray[np.int64]:
    """chunks + 1 trade indices cutting the trades into about equal chunks, each cut
    at the first trade past a bucket edge (a chunk may be empty: one long bucket)."""
    n = ts_ns.shape[0]
    bounds = np.empty(chunks + 1, np.int64)
    bounds[0] = 0
    for chunk in range(1, chunks):
        cut = max(n * chunk // chunks, bounds[chunk - 1])
        if cut < n:
            edge = ts_ns[cut] - ts_ns[cut] % bucket_ns + bucket_ns
            while cut < n and ts_ns[cut] < edge:
                cut += 1
        bounds[chunk] = cut
    bounds[chunks] = n
    return bounds


@njit(cache=True, nogil=True, inline="always")  # type: ignore[misc]
def _bar_rank(
    grid: npt.NDArray[np.float64],
    columns: int,
    owner: npt.NDArray[np.int64],
    rank_of_column: npt.NDArray[np.int64],
    bucket: int,
    column: int,
) -> int:
    """The name rank of the symbol whose bar the cell holds, or -1 for no bar: no chunk
    filled the bucket, the chunk numbered no symbol in that column, or it had no trade.
    Both passes of `_gather` read the cells through this one test, so they agree."""
    chunk = owner[bucket]
    if chunk < 0:
        return -1
    rank: int = rank_of_column[chunk, column]
    if rank < 0 or grid[(bucket * columns + column) * CELL_WORDS + _COUNT] == 0.0:
        return -1
    return rank


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _gather(
    grid: npt.NDArray[np.float64],
    columns: int,
    owner: npt.NDArray[np.int64],
    rank_of_column: npt.NDArray[np.int64],
    symbols: int,
    origin_ns: int,
    bucket_ns: int,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
]:
    """The occupied cells as bars sorted by symbol name then start: (name rank, start,
    (6, bars) floats [open, high, low, close, volume, notional], trade count).

    `owner[bucket]` is the chunk that filled the bucket (-1: none), and
    `rank_of_column[chunk, column]` the name rank of that chunk's column (-1: unused).
    The grid is read in memory order, twice: once to count each symbol's bars, once
    to place them (buckets come in time order, so each symbol's bars do too).
    """
    place = np.zeros(symbols + 1, np.int64)
    for bucket in range(owner.shape[0]):
        for column in range(columns):
            rank = _bar_rank(grid, columns, owner, rank_of_column, bucket, column)
            if rank >= 0:
                place[rank + 1] += 1
    for rank in range(symbols):
        place[rank + 1] += place[rank]
    bars = place[symbols]
    rank_of_bar = np.empty(bars, np.int64)
    start = np.empty(bars, np.int64)
    floats = np.empty((6, bars), np.float64)
    count = np.empty(bars, np.int64)
    for bucket in range(owner.shape[0]):
        for column in range(columns):
            rank = _bar_rank(grid, columns, owner, rank_of_column, bucket, column)
            if rank < 0:
                continue
            cell = (bucket * columns + column) * CELL_WORDS
            bar = place[rank]
            place[rank] += 1
            rank_of_bar[bar] = rank
            start[bar] = origin_ns + bucket * bucket_ns
            for word in range(6):
                floats[word, bar] = grid[cell + word]
            count[bar] = np.int64(grid[cell + _COUNT])
    return rank_of_bar, start, floats, count


def bars_on_grid(
    symbols: pl.Series,
    views: npt.NDArray[np.uint64] | None,
    codes: npt.NDArray[np.integer[Any]] | None,
    code_count: int | None,
    ts_ns: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    bucket_ns: int,
    max_cells: int,
) -> tuple[pl.Series, npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None:
    """(symbol per bar, start_ns, (6, bars) [open, high, low, close, volume, notional],
    trade count), sorted by symbol then start; None when the grid does not apply.

    Symbols are given as `views` ((n, 2) Arrow string views of `symbols`) or as
    `codes` (below `code_count`; None if not known: a Categorical's ids are global,
    and finding their maximum is a pass of its own, made only if the first guess is
    short). `max_cells` bounds the grid's size (its untouched pages cost no memory,
    but a grid of mostly empty cells is slow to gather).
    """
    n = ts_ns.shape[0]
    origin_ns = int(ts_ns[0]) - int(ts_ns[0]) % bucket_ns
    buckets = (int(ts_ns[-1]) - origin_ns) // bucket_ns + 1
    columns = min(n, _FIRST_COLUMNS) if code_count is None else code_count
    flat_views = None if views is None else views.reshape(-1)
    trades = (flat_views, codes, ts_ns, price, size, origin_ns, bucket_ns)
    chunks = CHUNKS_PER_CORE * (HELPERS + 1) if n >= PARALLEL_MIN_TRADES else 1
    bounds = _chunk_bounds(ts_ns, bucket_ns, chunks)
    while True:
        if buckets < 1 or columns > MAX_COLUMNS or buckets * columns > max_cells:
            return None
        grid, first, status = _fill_grid(trades, bounds, buckets, columns)
        if (status[:, 0] == _FULL).any() and code_count is None:
            code_count = min(n, MAX_COLUMNS) if codes is None else int(codes.max()) + 1
            columns = code_count
            continue
        if (status[:, 0] != _FILLED).any():
            return None
        break
    owner = np.full(buckets, -1, np.int64)
    for chunk, (_, low, high) in enumerate(status):
        if high >= 0:
            owner[low : high + 1] = chunk
    # Names of each chunk's symbols, from their first trades; ranks in name order.
    met = [np.flatnonzero(chunk_first >= 0) for chunk_first in first]
    names = [
        symbols.gather(chunk_first[m]).cast(pl.String).to_numpy()
        for chunk_first, m in zip(first, met, strict=True)
    ]
    sorted_names, rank = np.unique(np.concatenate(names), return_inverse=True)
    rank_of_column = np.full((len(first), columns), -1, np.int64)
    offset = 0
    for chunk, m in enumerate(met):
        rank_of_column[chunk, m] = rank[offset : offset + len(m)]
        offset += len(m)
    rank_of_bar, start, floats, count = _gather(
        grid, columns, owner, rank_of_column, len(sorted_names), origin_ns, bucket_ns
    )
    symbol = pl.Series("symbol", sorted_names, dtype=pl.String).gather(rank_of_bar)
    return symbol, start, floats, count


def _fill_chunk(
    shared: tuple[Any, ...],
    lo: int,
    hi: int,
    keys: npt.NDArray[np.uint64],
    first: npt.NDArray[np.int64],
    status: npt.NDArray[np.int64],
) -> None:
    """`_fill` on trades lo..hi, `shared` its arguments common to every chunk, with the
    chunk's own symbol table; `status` gets (status, first bucket, last bucket)."""
    arguments = (*shared, lo, hi, keys, first)
    status[:] = _fill(*arguments)


def _fill_grid(
    trades: tuple[Any, ...], bounds: npt.NDArray[np.int64], buckets: int, columns: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(grid, first trade per chunk and column, status per chunk), filled by a thread
    per chunk of `bounds`, or again by one when the chunks' buckets overlap. `trades`
    are `_fill`'s arguments up to `bucket_ns` (symbols, times, prices, sizes, the
    grid's origin and bucket width)."""
    while True:
        chunks = bounds.shape[0] - 1
        grid = np.empty(buckets * columns * CELL_WORDS, np.float64)
        keys = np.empty((chunks, _SLOTS * 4), np.uint64)
        first = np.empty((chunks, columns), np.int64)
        status = np.empty((chunks, 3), np.int64)
        shared = (*trades, buckets, columns, grid)
        run_tasks(
            [
                partial(
                    _fill_chunk,
                    shared,
                    int(bounds[chunk]),
                    int(bounds[chunk + 1]),
                    keys[chunk],
                    first[chunk],
                    status[chunk],
                )
                for chunk in range(chunks)
            ]
        )
        spans = status[status[:, 2] >= 0]
        failed = (status[:, 0] != _FILLED).any()
        if chunks == 1 or failed or (spans[1:, 1] > spans[:-1, 2]).all():
            return grid, first, status
        bounds = np.array([0, bounds[-1]], np.int64)
