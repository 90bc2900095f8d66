"""OHLCV+VWAP bars: built tick by tick for live data, and in batch with Polars for history.

Bucketing is by the trade's own timestamp, aligned to the Unix epoch in UTC (a 1Day
bar is a UTC day, which contains the whole US regular session), never by arrival
time. A bar closes when its symbol's clock (the latest quote or trade timestamp
seen for it) reaches the bar's end. Both rules depend only on the tick sequence of
one symbol, so replaying the same ticks after a crash rebuilds the same bars.

A trade older than the symbol's current finest bucket is late: it is counted and
left out, because the bar it belongs to may already have been published. The
incremental and the batch path agree on every input without late trades.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from cift.runtime.errors import InvalidArgument
from cift.runtime.timestamps import NS_PER_S
from services.marketdata.bars_grid import bars_on_grid
from services.marketdata.bars_kernel import (
    BAR_CLOSE,
    BAR_COUNT,
    BAR_HIGH,
    BAR_LOW,
    BAR_NOTIONAL,
    BAR_OPEN,
    BAR_START,
    BAR_SYMBOL,
    BAR_VOLUME,
    FULL,
    OUT_OF_ORDER,
    TOO_MANY,
    VIEW_SLOTS,
    VIEWS_UNUSABLE,
    aggregate_in_arrival_order,
    codes_from_string_views,
)


@dataclass(frozen=True, slots=True)
class Timeframe:
    name: str
    ns: int


TIMEFRAMES: tuple[Timeframe, ...] = (
    Timeframe("1Sec", NS_PER_S),
    Timeframe("1Min", 60 * NS_PER_S),
    Timeframe("5Min", 300 * NS_PER_S),
    Timeframe("15Min", 900 * NS_PER_S),
    Timeframe("1Hour", 3600 * NS_PER_S),
    Timeframe("1Day", 86400 * NS_PER_S),
)
_BY_NAME = {tf.name.lower(): tf for tf in TIMEFRAMES}


def parse_timeframe(name: str) -> Timeframe:
    """The timeframe called `name` (case-insensitive), or INVALID_ARGUMENT listing the valid ones."""
    timeframe = _BY_NAME.get(name.strip().lower())
    if timeframe is None:
        valid = ", ".join(tf.name for tf in TIMEFRAMES)
        raise InvalidArgument(f"Unknown timeframe {name!r}; use one of {valid}.")
    return timeframe


def bucket_start(ts_ns: int, timeframe: Timeframe) -> int:
    return ts_ns - ts_ns % timeframe.ns


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar. `notional` (sum of price*size) is kept so a bar can be resumed exactly."""

    symbol: str
    timeframe: str
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float
    trade_count: int

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume > 0 else self.close


class _OpenBar:
    """The mutable state of a bar still receiving trades (hot path: no dataclass overhead)."""

    __slots__ = ("close", "count", "high", "low", "notional", "open", "start_ns", "volume")

    def __init__(self, start_ns: int, price: float, size: float) -> None:
        self.start_ns = start_ns
        self.open = price
        self.high = price
        self.low = price
        self.close = price
        self.volume = size
        self.notional = price * size
        self.count = 1

    def freeze(self, symbol: str, timeframe: str) -> Bar:
        return Bar(
            symbol,
            timeframe,
            self.start_ns,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.notional,
            self.count,
        )


def _thaw(bar: Bar) -> _OpenBar:
    state = _OpenBar(bar.start_ns, bar.open, 0.0)
    state.high = bar.high
    state.low = bar.low
    state.close = bar.close
    state.volume = bar.volume
    state.notional = bar.notional
    state.count = bar.trade_count
    return state


class BarBuilder:
    """Aggregates trades into bars of several timeframes and hands back the ones that close."""

    def __init__(self, timeframes: Sequence[Timeframe] = TIMEFRAMES) -> None:
        if not timeframes:
            raise InvalidArgument("A bar builder needs at least one timeframe.")
        self.timeframes = tuple(sorted(timeframes, key=lambda tf: tf.ns))
        self._ns = tuple(tf.ns for tf in self.timeframes)
        self._names = tuple(tf.name for tf in self.timeframes)
        self._finest_ns = self._ns[0]
        self._open: dict[str, list[_OpenBar | None]] = {}
        self._clock: dict[str, int] = {}
        # End of the finest bucket holding each symbol's clock: below it nothing closes.
        self._bucket_end: dict[str, int] = {}
        self.late_trades = 0

    def on_trade(self, symbol: str, ts_ns: int, price: float, size: float) -> list[Bar]:
        """Add one trade; returns the bars of `symbol` that its timestamp closed."""
        closed = self.advance(symbol, ts_ns)
        clock = self._clock[symbol]
        if ts_ns - ts_ns % self._finest_ns < clock - clock % self._finest_ns:
            self.late_trades += 1
            return closed
        bars = self._open[symbol]
        for k, ns in enumerate(self._ns):
            bar = bars[k]
            if bar is None:
                bars[k] = _OpenBar(ts_ns - ts_ns % ns, price, size)
                continue
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += size
            bar.notional += price * size
            bar.count += 1
        return closed

    def advance(self, symbol: str, ts_ns: int) -> list[Bar]:
        """Move `symbol`'s clock to `ts_ns` (a quote or trade time), closing bars that ended."""
        bucket_end = self._bucket_end.get(symbol)
        if bucket_end is not None and ts_ns < bucket_end:
            # Fast path: still inside the clock's finest bucket, so no bar can close.
            if ts_ns > self._clock[symbol]:
                self._clock[symbol] = ts_ns
            return []
        self._bucket_end[symbol] = ts_ns - ts_ns % self._finest_ns + self._finest_ns
        previous = self._clock.get(symbol)
        if previous is None:
            self._clock[symbol] = ts_ns
            self._open[symbol] = [None] * len(self._ns)
            return []
        self._clock[symbol] = ts_ns
        closed: list[Bar] = []
        bars = self._open[symbol]
        for k, ns in enumerate(self._ns):
            bar = bars[k]
            if bar is not None and ts_ns >= bar.start_ns + ns:
                closed.append(bar.freeze(symbol, self._names[k]))
                bars[k] = None
        return closed

    def open_bars(self) -> list[Bar]:
        """Snapshot of every bar still open (persisted with the consumed offsets)."""
        snapshot = []
        for symbol, bars in self._open.items():
            for k, bar in enumerate(bars):
                if bar is not None:
                    snapshot.append(bar.freeze(symbol, self._names[k]))
        return snapshot

    def open_bar(self, symbol: str, timeframe: str) -> Bar | None:
        bars = self._open.get(symbol)
        if bars is None:
            return None
        k = self._names.index(parse_timeframe(timeframe).name)
        bar = bars[k]
        return None if bar is None else bar.freeze(symbol, self._names[k])

    def clocks(self) -> dict[str, int]:
        return dict(self._clock)

    @property
    def finest_ns(self) -> int:
        return self._finest_ns

    def bucket_end(self, symbol: str) -> int | None:
        """End of the finest bucket holding the symbol's clock (None before its first tick):
        a tick before it cannot close any of the symbol's bars."""
        return self._bucket_end.get(symbol)

    def restore(self, open_bars: Iterable[Bar], clocks: dict[str, int]) -> None:
        """Resume from a snapshot taken by `open_bars` and `clocks` (after a restart)."""
        self._open.clear()
        self._clock = dict(clocks)
        self._bucket_end = {
            s: c - c % self._finest_ns + self._finest_ns for s, c in self._clock.items()
        }
        for symbol in self._clock:
            self._open[symbol] = [None] * len(self._ns)
        for bar in open_bars:
            k = self._names.index(parse_timeframe(bar.timeframe).name)
            if bar.symbol not in self._clock:
                raise InvalidArgument(
                    f"Open bar for {bar.symbol} has no symbol clock to resume from."
                )
            self._open[bar.symbol][k] = _thaw(bar)


BAR_COLUMNS = (
    "symbol",
    "start_ns",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "trade_count",
)


def aggregate_trades(trades: pl.LazyFrame | pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """Bars from a frame of trades (columns symbol, ts_ns, price, size).

    Open and close are a bucket's first and last trade in row order, as a group-by
    takes them. Trades in time order across symbols (how a feed delivers them) take
    `bars_grid`'s one pass split over the cores; a span of time too long for its grid
    takes `bars_kernel`'s per-symbol pass, which needs time order within each symbol
    only; trades going back in time within a symbol take the Polars group-by. The
    result is sorted by symbol then bar start and includes a `vwap` column.
    """
    frame = trades.collect() if isinstance(trades, pl.LazyFrame) else trades
    symbols = frame.get_column("symbol")
    if frame.height == 0 or symbols.null_count():
        return _aggregate_with_polars(frame, timeframe)
    columns = _Trades(
        symbols,
        frame.get_column("ts_ns").to_numpy().astype(np.int64, copy=False),
        frame.get_column("price").to_numpy().astype(np.float64, copy=False),
        frame.get_column("size").to_numpy().astype(np.float64, copy=False),
    )
    bars = _aggregate_on_grid(columns, timeframe.ns)
    if bars is None:
        bars = _aggregate_by_symbol(columns, timeframe.ns)
    if bars is None:
        return _aggregate_with_polars(frame, timeframe)
    symbol, start, floats, count = bars
    return pl.DataFrame(
        {
            "symbol": symbol,
            "start_ns": start,
            "open": floats[BAR_OPEN],
            "high": floats[BAR_HIGH],
            "low": floats[BAR_LOW],
            "close": floats[BAR_CLOSE],
            "volume": floats[BAR_VOLUME],
            "notional": floats[BAR_NOTIONAL],
            "trade_count": count,
            # The same IEEE division Polars does, on the same operands.
            "vwap": floats[BAR_NOTIONAL] / floats[BAR_VOLUME],
        },
        schema=TRADE_BAR_SCHEMA | {"vwap": pl.Float64},
    )


class _Trades(NamedTuple):
    """A frame's trades as each kernel path takes them: the symbol column as Polars
    holds it (each path reads it as string views or codes), the rest as NumPy arrays."""

    symbols: pl.Series
    ts_ns: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]


# (symbol per bar, start_ns, (6, bars) floats in BAR_OPEN..BAR_NOTIONAL order, trade
# count), sorted by symbol then start.
_Bars = tuple[pl.Series, npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]


def _aggregate_on_grid(trades: _Trades, ns: int) -> _Bars | None:
    """The bars from `bars_grid` (one pass, split over the cores), or None when the
    symbols are neither short strings nor dictionary codes or the grid does not apply."""
    symbols, ts_ns, price, size = trades
    views = codes = None
    code_count = None
    if symbols.dtype == pl.String:
        views = _string_views(symbols)
        if views is None:
            return None
    elif symbols.dtype == pl.Categorical or isinstance(symbols.dtype, pl.Enum):
        codes = symbols.to_physical().to_numpy()
        if isinstance(symbols.dtype, pl.Enum):
            code_count = len(symbols.dtype.categories)
    else:
        return None
    # Cells past half a cell per trade: the grid would be mostly empty, so the
    # per-symbol kernel, which stores only bars, does better.
    max_cells = max(len(ts_ns) // 2, GRID_MIN_CELLS)
    return bars_on_grid(symbols, views, codes, code_count, ts_ns, price, size, ns, max_cells)


# Small frames always fit a grid of this many cells (4 MB of address space, touched only
# where trades fall).
GRID_MIN_CELLS = 1 << 16


def _aggregate_by_symbol(trades: _Trades, ns: int) -> _Bars | None:
    """The bars from `bars_kernel`'s per-symbol pass, or None when the trades go back in
    time within a symbol or the symbols cannot be numbered (the Polars group-by's case)."""
    symbols, ts_ns = trades.symbols, trades.ts_ns
    # Time-ordered trades span first..last: at most that many buckets per symbol. Should
    # that guess be short (trades interleaved out of time order across symbols), the
    # kernel says FULL and runs again with room for one bar per trade.
    buckets_per_symbol = max(int(ts_ns[-1] // ns - ts_ns[0] // ns), 0) + 1
    result = _aggregate_fused(trades, ns, buckets_per_symbol)
    if result is None:
        coded = _symbol_codes(symbols)
        if coded is None:
            return None
        symbol_count, codes = coded
        capacity = min(len(ts_ns), symbol_count * buckets_per_symbol)
        result = _arrival_order_bars(codes, None, trades, ns, symbol_count, capacity)
    rows, first_index, bar_i, bar_f = result
    if rows == OUT_OF_ORDER:
        return None
    symbol = bar_i[:rows, BAR_SYMBOL]
    start = bar_i[:rows, BAR_START]
    # Each code's name from its first trade; bars sort by name as Polars sorts strings.
    seen = np.flatnonzero(first_index >= 0)
    seen_names = symbols.gather(first_index[seen]).cast(pl.String)
    by_name = np.argsort(seen_names.to_numpy(), kind="stable")
    rank = np.zeros(len(first_index), np.int64)
    rank[seen[by_name]] = np.arange(len(seen))
    # A symbol's bars open in time order (the kernel refuses anything else), so a
    # stable sort by symbol alone leaves them by start within it: a radix sort on
    # 16-bit ranks, ~10x faster than sorting on both keys.
    if len(seen) <= np.iinfo(np.uint16).max:
        order = np.argsort(rank[symbol].astype(np.uint16), kind="stable")
    else:
        order = np.lexsort((start, rank[symbol]))
    # One gather per output, then each column a contiguous row (no copy per column).
    ints = bar_i[:rows][order].T.copy()
    floats = bar_f[:rows][order].T.copy()
    # The names from the few distinct symbols: no Python object per bar.
    names = seen_names.gather(by_name).gather(rank[ints[BAR_SYMBOL]])
    return names, ints[BAR_START], floats, ints[BAR_COUNT]


_KernelResult = tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]


def _arrival_order_bars(
    codes: npt.NDArray[np.integer[Any]] | None,
    views: npt.NDArray[np.uint64] | None,
    trades: _Trades,
    ns: int,
    symbol_count: int,
    capacity: int,
) -> _KernelResult:
    """`bars_kernel.aggregate_in_arrival_order`, run again with room for a bar per trade
    should `capacity` (a guess) prove short."""
    _, ts_ns, price, size = trades
    result: _KernelResult = aggregate_in_arrival_order(
        codes, views, ts_ns, price, size, ns, symbol_count, capacity
    )
    if result[0] == FULL:
        result = aggregate_in_arrival_order(
            codes, views, ts_ns, price, size, ns, symbol_count, len(ts_ns)
        )
    return result


def _aggregate_fused(trades: _Trades, ns: int, buckets_per_symbol: int) -> _KernelResult | None:
    """The bars in one pass straight from string symbols' Arrow views (no code array),
    or None when the symbols must be numbered first (not strings, not views, too long
    or too many distinct)."""
    symbols = trades.symbols
    if symbols.dtype != pl.String:
        return None
    views = _string_views(symbols)
    if views is None:
        return None
    capacity = min(len(views), VIEW_SLOTS // 8 * buckets_per_symbol)
    result = _arrival_order_bars(None, views, trades, ns, VIEW_SLOTS, capacity)
    return None if result[0] == VIEWS_UNUSABLE else result


# Past this many distinct codes (a Categorical's global ids can be sparse) the per-symbol
# state would not fit in cache: such frames take the Polars group-by.
MAX_SYMBOL_CODE = 1 << 20


def _symbol_codes(symbols: pl.Series) -> tuple[int, npt.NDArray[np.integer[Any]]] | None:
    """(number of codes, small integer code per trade) for the symbols, or None when
    the frame should take the Polars group-by (nulls, or too many distinct codes).

    A Categorical's or Enum's own ids are free. Strings are read as Arrow string views
    (zero-copy) and numbered by `codes_from_string_views`, which is several times faster
    than a cast to Categorical; a string longer than a view holds inline is cast.
    """
    if symbols.null_count():
        return None
    if symbols.dtype == pl.String:
        views = _string_views(symbols)
        if views is not None:
            codes = np.empty(len(views), np.uint32)
            distinct = codes_from_string_views(views, MAX_SYMBOL_CODE, codes)
            if distinct >= 0:
                return distinct, codes
            if distinct == TOO_MANY:
                return None
    if symbols.dtype != pl.Categorical and not isinstance(symbols.dtype, pl.Enum):
        symbols = symbols.cast(pl.Categorical)
    codes = symbols.to_physical().to_numpy()
    count = int(codes.max()) + 1
    return None if count > MAX_SYMBOL_CODE else (count, codes)


def _string_views(symbols: pl.Series) -> npt.NDArray[np.uint64] | None:
    """The column's Arrow string views as (n, 2) uint64 words, without a copy; None if
    Polars does not hand them out as views."""
    arrow = symbols.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    if not isinstance(arrow, pa.StringViewArray):
        return None
    words = np.frombuffer(arrow.buffers()[1], dtype=np.uint64).reshape(-1, 2)
    return words[arrow.offset : arrow.offset + len(arrow)]


# The columns of stored trade bars, in order: the batch path and the Parquet export share them.
TRADE_BAR_SCHEMA = {
    "symbol": pl.String,
    "start_ns": pl.Int64,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "notional": pl.Float64,
    "trade_count": pl.Int64,
}
# A Bar as a frame row: the stored columns with the timeframe after the symbol, and vwap.
_BAR_FRAME_SCHEMA = (
    {"symbol": pl.String, "timeframe": pl.String}
    | {name: kind for name, kind in TRADE_BAR_SCHEMA.items() if name != "symbol"}
    | {"vwap": pl.Float64}
)


def _aggregate_with_polars(frame: pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """The group-by form: for trades out of time order within a symbol (first/last
    then follow row order, as for the kernel)."""
    ns = timeframe.ns
    return (
        frame.lazy()
        .with_columns(
            pl.col("symbol").cast(pl.String),
            (pl.col("ts_ns") - pl.col("ts_ns") % ns).alias("start_ns"),
        )
        .group_by("symbol", "start_ns")
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            (pl.col("price") * pl.col("size")).sum().alias("notional"),
            pl.len().cast(pl.Int64).alias("trade_count"),
        )
        .with_columns((pl.col("notional") / pl.col("volume")).alias("vwap"))
        .sort("symbol", "start_ns")
        .collect()
    )


def resample_bars(bars: pl.LazyFrame | pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """Coarser bars from finer ones (columns of BAR_COLUMNS, sorted by start within a symbol)."""
    lazy = bars.lazy() if isinstance(bars, pl.DataFrame) else bars
    ns = timeframe.ns
    return (
        lazy.with_columns((pl.col("start_ns") - pl.col("start_ns") % ns).alias("start_ns"))
        .group_by("symbol", "start_ns")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("notional").sum(),
            pl.col("trade_count").sum(),
        )
        .with_columns((pl.col("notional") / pl.col("volume")).alias("vwap"))
        .sort("symbol", "start_ns")
        .collect()
    )


def bars_to_frame(bars: Iterable[Bar]) -> pl.DataFrame:
    """Bars as a Polars frame with the columns of BAR_COLUMNS plus timeframe and vwap."""
    rows = list(bars)
    return pl.DataFrame(
        {name: [getattr(b, name) for b in rows] for name in _BAR_FRAME_SCHEMA},
        schema=_BAR_FRAME_SCHEMA,
    )
