"""Bars from trades in one pass, in arrival order, keeping one open bar per symbol.

The batch path's kernel for spans of time too long for `bars_grid`'s (bucket x
symbol) grid, which `bars.aggregate_trades` tries first; also the home of the
string-view symbol table both use.

Trades arrive ordered by time across all symbols, not grouped by symbol. A sort or a
hash group-by (what pandas and Polars do) touches every trade several times; this
kernel touches each once: it keeps, per symbol, the bar being built in a small row
that stays in L1 cache, and writes it out when a trade falls in a later bucket. Only
the finished bars (a few per symbol and timeframe, not one per trade) are sorted
afterwards. String symbols are numbered from their Arrow string views (below), one
probe of a small table per trade, instead of hashing their bytes.

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
# Returned by `aggregate_in_arrival_order` on string views when a symbol is longer than a
# view holds inline or there are more distinct symbols than its table takes: number them
# apart instead.
VIEWS_UNUSABLE = -3

# Columns of the integer and float outputs, one row per bar (a bar closing writes one
# row of each: two cache lines, not nine scattered ones).
BAR_SYMBOL, BAR_START, BAR_COUNT = 0, 1, 2
BAR_OPEN, BAR_HIGH, BAR_LOW, BAR_CLOSE, BAR_VOLUME, BAR_NOTIONAL = 0, 1, 2, 3, 4, 5


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _new_state(
    symbol_count: int, capacity: int
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
]:
    """(open_i, open_f, first_index, bar_i, bar_f) for the kernels below.

    The bar each symbol is building lives in two small per-symbol rows (a few KB for
    hundreds of symbols, so they stay in L1) and is written out once, when it closes:
    a trade touches its symbol's rows, never the output.
    open_i: [bucket start, bucket end, output row, trade count]; open_f: [high, low,
    close, volume, notional]. An empty interval (start 1, end 0) holds no timestamp,
    so a symbol's first trade opens a bar.
    """
    open_i = np.empty((symbol_count, 4), np.int64)
    open_f = np.empty((symbol_count, 5), np.float64)
    for symbol in range(symbol_count):
        open_i[symbol, 0] = 1
        open_i[symbol, 1] = 0
        open_i[symbol, 2] = -1
    first_index = np.full(symbol_count, -1, np.int64)
    bar_i = np.empty((capacity, 3), np.int64)
    bar_f = np.empty((capacity, 6), np.float64)
    return open_i, open_f, first_index, bar_i, bar_f


@njit(cache=True, nogil=True, inline="always")  # type: ignore[misc]
def _close_bar(
    open_i: npt.NDArray[np.int64],
    open_f: npt.NDArray[np.float64],
    symbol: int | np.integer[Any],
    bar_i: npt.NDArray[np.int64],
    bar_f: npt.NDArray[np.float64],
) -> None:
    """Write the symbol's open bar to its output row."""
    row = open_i[symbol, 2]
    bar_f[row, BAR_HIGH] = open_f[symbol, 0]
    bar_f[row, BAR_LOW] = open_f[symbol, 1]
    bar_f[row, BAR_CLOSE] = open_f[symbol, 2]
    bar_f[row, BAR_VOLUME] = open_f[symbol, 3]
    bar_f[row, BAR_NOTIONAL] = open_f[symbol, 4]
    bar_i[row, BAR_COUNT] = open_i[symbol, 3]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def aggregate_in_arrival_order(
    codes: npt.NDArray[np.integer[Any]] | None,
    views: npt.NDArray[np.uint64] | None,
    ts_ns: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    bucket_ns: int,
    symbol_count: int,
    capacity: int,
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(rows, first index, bar ints, bar floats) from trades whose symbols come from
    `codes` or from `views`, whichever is given (the other is None).

    `codes[i]` is trade i's symbol as 0..symbol_count-1 (codes need not all occur).
    `views` are string symbols given as Arrow string views ((n, 2) uint64 words): each
    trade's symbol is looked up and its bar updated in the same pass, so no code array
    is written and read back (40 MB for 10M trades: a pass, and its page faults). A
    symbol's code is then its slot in a table of VIEW_SLOTS slots, and `symbol_count`
    must be VIEW_SLOTS (the per-symbol state is indexed by slot, which saves a load per
    trade).

    `first_index[code]` is the first trade of that symbol, -1 if none. Bars are numbered
    in the order they open; row r of `bar_i` is [symbol code, start_ns, trade count],
    of `bar_f` [open, high, low, close, volume, notional]. `rows` of the `capacity`
    rows are used, or (then nothing is usable) OUT_OF_ORDER if some symbol's trade
    falls in a bucket earlier than one it already has, FULL if more than `capacity`
    bars open, VIEWS_UNUSABLE for a view of a symbol past 12 bytes or more than
    VIEW_SLOTS / 8 distinct symbols.

    Numba compiles one loop per case and drops the branch that reads the None argument
    (`x is not None` is then known at compile time). A helper called per trade instead
    would cost reference counting on every array it takes: measured ~50 ns a trade,
    25x the whole loop body.
    """
    shift = _slot_shift(VIEW_SLOTS)
    mask = VIEW_SLOTS - 1
    key = np.empty((VIEW_SLOTS, 2), np.uint64)
    for slot in range(VIEW_SLOTS):
        key[slot, 0] = _EMPTY_SLOT
        key[slot, 1] = 0
    open_i, open_f, first_index, bar_i, bar_f = _new_state(symbol_count, capacity)
    distinct = 0
    rows = 0
    for i in range(ts_ns.shape[0]):
        if views is not None:
            a = views[i, 0]
            b = views[i, 1]
            symbol = _view_slot(a, b, shift)
            # The common case, a symbol seen before in its home slot: two compares.
            while key[symbol, 0] != a or key[symbol, 1] != b:
                if key[symbol, 0] == _EMPTY_SLOT:
                    if (a & _LENGTH_MASK) > _INLINE or distinct == VIEW_SLOTS // _SPARSITY:
                        return VIEWS_UNUSABLE, first_index, bar_i, bar_f
                    key[symbol, 0] = a
                    key[symbol, 1] = b
                    distinct += 1
                    break
                symbol = (symbol + 1) & mask
        if codes is not None:
            symbol = np.int64(codes[i])
        ts = ts_ns[i]
        p = price[i]
        q = size[i]
        # Most trades fall in their symbol's open bucket: two compares, no division.
        if open_i[symbol, 0] <= ts < open_i[symbol, 1]:
            high = open_f[symbol, 0]
            low = open_f[symbol, 1]
            open_f[symbol, 0] = p if p > high else high
            open_f[symbol, 1] = p if p < low else low
            open_f[symbol, 2] = p
            open_f[symbol, 3] += q
            open_f[symbol, 4] += p * q
            open_i[symbol, 3] += 1
            continue
        start = ts - ts % bucket_ns  # floor, also before 1970 (Python's % semantics)
        if open_i[symbol, 2] >= 0:
            if start < open_i[symbol, 0]:
                return OUT_OF_ORDER, first_index, bar_i, bar_f
            _close_bar(open_i, open_f, symbol, bar_i, bar_f)
        else:
            first_index[symbol] = i
        if rows == capacity:
            return FULL, first_index, bar_i, bar_f
        open_i[symbol, 0] = start
        open_i[symbol, 1] = start + bucket_ns
        open_i[symbol, 2] = rows
        open_i[symbol, 3] = 1
        open_f[symbol, 0] = p
        open_f[symbol, 1] = p
        open_f[symbol, 2] = p
        open_f[symbol, 3] = q
        open_f[symbol, 4] = p * q
        bar_i[rows, BAR_SYMBOL] = symbol
        bar_i[rows, BAR_START] = start
        bar_f[rows, BAR_OPEN] = p
        rows += 1
    for code in range(symbol_count):
        if open_i[code, 2] >= 0:
            _close_bar(open_i, open_f, code, bar_i, bar_f)
    return rows, first_index, bar_i, bar_f


# Arrow's string view: 16 bytes per value, a 4-byte length then, for strings of at most
# 12 bytes, the bytes themselves zero-padded. Such a view is the string: equal views,
# equal strings. A longer string's view holds a pointer instead, so it cannot be used.
INLINE_STRING_BYTES = 12
TOO_LONG = -1
TOO_MANY = -2
_LENGTH_MASK = np.uint64(0xFFFFFFFF)
_INLINE = np.uint64(INLINE_STRING_BYTES)
# A view's length word never says 2**32 - 1 (strings past 12 bytes are refused).
_EMPTY_SLOT = np.uint64(0xFFFFFFFF)
_MIX_C = np.uint64(0x9E3779B97F4A7C15)
_HALF = np.uint64(32)
# Slots per distinct string at most: a sparse table keeps probe chains short, and the
# hot loop then mostly takes the same branches (mispredictions cost more than probes).
_SPARSITY = 8
# The fused kernel's fixed table: up to 512 distinct symbols (more take two passes).
VIEW_SLOTS = 4096


@njit(cache=True, nogil=True, inline="always")  # type: ignore[misc]
def _view_slot(a: np.uint64, b: np.uint64, shift: np.uint64) -> np.int64:
    """A table slot (of 2**(64 - shift)) for a view: Fibonacci hashing of both words
    folded into one (one multiply; the product's top bits depend on every key bit)."""
    h = (a ^ ((b << _HALF) | (b >> _HALF))) * _MIX_C
    return np.int64(h >> shift)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _slot_shift(slots: int) -> np.uint64:
    """64 - log2(slots), for a power-of-two number of slots."""
    bits = 0
    while (1 << bits) < slots:
        bits += 1
    return np.uint64(64 - bits)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def codes_from_string_views(
    views: npt.NDArray[np.uint64], max_codes: int, codes: npt.NDArray[np.uint32]
) -> int:
    """The number of distinct strings among Arrow string views given as (n, 2) uint64
    words; `codes` (n values, allocated by the caller: NumPy asks for huge pages, which
    saves most page faults) gets each value's code, numbering the strings in the order
    they first occur.

    One pass with a small open-addressing table keyed by the 16 view bytes, instead of
    hashing the string bytes (what a cast to Categorical does). Returns TOO_LONG if a
    string is longer than 12 bytes, TOO_MANY past `max_codes` distinct strings.
    """
    n = views.shape[0]
    slots = 4096
    slot_code = np.full(slots, -1, np.int64)
    slot_a = np.full(slots, _EMPTY_SLOT, np.uint64)
    slot_b = np.zeros(slots, np.uint64)
    distinct = 0
    i = 0
    while i < n:
        i, distinct = _number_views(views, i, codes, slot_code, slot_a, slot_b, distinct, max_codes)
        if distinct < 0:
            return distinct
        if i < n:
            # The table is full enough: grow it and place every key again. (Outside the
            # hot loop, which then holds no array it might replace.)
            old_code, old_a, old_b = slot_code, slot_a, slot_b
            slots *= 2
            slot_code = np.full(slots, -1, np.int64)
            slot_a = np.full(slots, _EMPTY_SLOT, np.uint64)
            slot_b = np.zeros(slots, np.uint64)
            shift = _slot_shift(slots)
            for old in range(old_code.shape[0]):
                if old_code[old] >= 0:
                    slot = _view_slot(old_a[old], old_b[old], shift)
                    while slot_a[slot] != _EMPTY_SLOT:
                        slot = (slot + 1) & (slots - 1)
                    slot_code[slot] = old_code[old]
                    slot_a[slot] = old_a[old]
                    slot_b[slot] = old_b[old]
    return distinct


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _number_views(
    views: npt.NDArray[np.uint64],
    start: int,
    codes: npt.NDArray[np.uint32],
    slot_code: npt.NDArray[np.int64],
    slot_a: npt.NDArray[np.uint64],
    slot_b: npt.NDArray[np.uint64],
    distinct: int,
    max_codes: int,
) -> tuple[int, int]:
    """Number views from `start` on until the table holds its share; (next index,
    distinct). An empty slot's first word is EMPTY_SLOT, which no inline view has."""
    mask = slot_code.shape[0] - 1
    shift = _slot_shift(slot_code.shape[0])
    limit = slot_code.shape[0] // _SPARSITY
    for i in range(start, views.shape[0]):
        a = views[i, 0]
        b = views[i, 1]
        slot = _view_slot(a, b, shift)
        # The common case, a string seen before in its home slot: two compares.
        while slot_a[slot] != a or slot_b[slot] != b:
            if slot_a[slot] == _EMPTY_SLOT:
                if (a & _LENGTH_MASK) > _INLINE:
                    return i, TOO_LONG
                if distinct == max_codes:
                    return i, TOO_MANY
                slot_code[slot] = distinct
                slot_a[slot] = a
                slot_b[slot] = b
                distinct += 1
                if distinct >= limit:
                    codes[i] = slot_code[slot]
                    return i + 1, distinct
                break
            slot = (slot + 1) & mask
        codes[i] = slot_code[slot]
    return views.shape[0], distinct


# A bucket end before every time: a symbol the bar builder has not seen yet, whose
# first tick must always reach it.
NO_BUCKET = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ticks_that_move_bars(
    codes: npt.NDArray[np.int64],
    is_trade: npt.NDArray[np.bool_],
    ts_ns: npt.NDArray[np.int64],
    bucket_end: npt.NDArray[np.int64],
    finest_ns: int,
    needed: npt.NDArray[np.bool_],
    newest_ns: npt.NDArray[np.int64],
    last_quote: npt.NDArray[np.int64],
) -> None:
    """Which ticks of a batch the live bar builder (`bars.BarBuilder`) must see one by one.

    A trade always changes a bar; a quote only moves its symbol's clock, and closes
    bars only when it reaches the end of the finest bucket holding that clock
    (`bucket_end[code]`, NO_BUCKET for a symbol not seen yet; updated here as the
    builder would). Any other quote leaves the builder as it was except for its clock,
    the running maximum of the symbol's tick times: the caller advances each symbol
    once to `newest_ns[code]` instead. `needed[i]` marks the ticks to hand over;
    `last_quote[code]` is the symbol's last quote in the batch (-1 if none).
    """
    for i in range(codes.shape[0]):
        code = codes[i]
        ts = ts_ns[i]
        crosses = ts >= bucket_end[code]
        if crosses:
            bucket_end[code] = ts - ts % finest_ns + finest_ns
        if ts > newest_ns[code]:
            newest_ns[code] = ts
        if is_trade[i]:
            needed[i] = True
        else:
            needed[i] = crosses
            last_quote[code] = i
