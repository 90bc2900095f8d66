"""Bars in, checked columns out: what a backtest may run on, and why it refuses the rest.

A backtest on bad history gives confident, wrong numbers, so every problem the
engines cannot see for themselves is refused here with INVALID_ARGUMENT before
anything runs: a missing column, no rows, a NaN or non-positive price, high below
low, timestamps out of order or repeated within a symbol. Several symbols come in
one frame with a `symbol` column and are split here, each sorted check kept per
symbol. No I/O except `read_bars`, which only reads the file it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from cift.runtime.errors import InvalidArgument

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
# Names other tools give the time column (backtesting.py's CSVs, exchange dumps), and
# market data's own bars (ExportBars' Parquet: start_time; GetBars' JSON: startTime).
TIMESTAMP_ALIASES = ("date", "datetime", "time", "start_time", "starttime")
DEFAULT_SYMBOL = "ASSET"


@dataclass(frozen=True, slots=True)
class SymbolBars:
    """One symbol's bars as contiguous float64 columns, time-ordered, NaN-free."""

    symbol: str
    timestamp: pl.Series  # Datetime("ns")
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return len(self.close)

    @property
    def ts_ns(self) -> I64:
        return self.timestamp.dt.epoch("ns").to_numpy()


def read_bars(path: str | Path) -> pl.DataFrame:
    """Read bars from a CSV or Parquet file, column names lower-cased."""
    file = Path(path)
    suffix = file.suffix.lower()
    if not file.is_file():
        raise InvalidArgument(f"No bars file at {file}.")
    try:
        if suffix == ".parquet":
            frame = pl.read_parquet(file)
        elif suffix == ".csv":
            frame = pl.read_csv(file, try_parse_dates=True)
        else:
            raise InvalidArgument(f"Bars must be a .csv or .parquet file, not {file.name}.")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InvalidArgument(f"Cannot read bars from {file.name}: {error}") from None
    return frame


def normalize_columns(bars: pl.DataFrame) -> pl.DataFrame:
    """Lower-case column names and call the time column `timestamp`."""
    frame = bars.rename({name: name.lower() for name in bars.columns})
    if "timestamp" not in frame.columns:
        for alias in TIMESTAMP_ALIASES:
            if alias in frame.columns:
                return frame.rename({alias: "timestamp"})
        # A pandas index written to CSV arrives as an unnamed first column.
        first = frame.columns[0] if frame.columns else ""
        if first in ("", "__index_level_0__") or first.startswith("unnamed"):
            return frame.rename({first: "timestamp"})
    return frame


def split_bars(bars: pl.DataFrame, symbol: str | None = None) -> list[SymbolBars]:
    """Check `bars` and split them by symbol (sorted by name); `symbol` keeps just one."""
    if not isinstance(bars, pl.DataFrame):
        raise InvalidArgument(f"Bars must be a Polars DataFrame, not {type(bars).__name__}.")
    frame = normalize_columns(bars)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidArgument(
            f"Bars lack the column(s) {', '.join(missing)}; a backtest needs "
            f"{', '.join(REQUIRED_COLUMNS)} (and optionally symbol)."
        )
    if frame.height == 0:
        raise InvalidArgument("The bars are empty; a backtest needs at least one bar.")
    frame = frame.with_columns(_timestamp_column(frame["timestamp"]), *_number_columns(frame))
    if "symbol" in frame.columns:
        frame = frame.with_columns(pl.col("symbol").cast(pl.String))
        if frame["symbol"].null_count():
            raise InvalidArgument("Every bar needs a symbol when the symbol column is present.")
        names = sorted(frame["symbol"].unique().to_list())
    else:
        # One symbol, all of the frame: no symbol column to add and group by.
        return [_symbol_bars(symbol or DEFAULT_SYMBOL, frame)]
    if symbol is not None:
        if symbol not in names:
            raise InvalidArgument(
                f"No bars for symbol {symbol!r}; the data has {', '.join(names)}."
            )
        names = [symbol]
    groups = frame.partition_by("symbol", as_dict=True, maintain_order=True)
    return [_symbol_bars(name, groups[(name,)]) for name in names]


def _timestamp_column(column: pl.Series) -> pl.Series:
    if column.null_count():
        raise InvalidArgument("A bar has no timestamp.")
    dtype = column.dtype
    if dtype == pl.Date:
        return column.cast(pl.Datetime("ns"))
    if isinstance(dtype, pl.Datetime):
        return column.dt.replace_time_zone(None).cast(pl.Datetime("ns"))
    if dtype == pl.String:
        try:
            return column.str.to_datetime(time_unit="ns")
        except pl.exceptions.PolarsError:
            raise InvalidArgument(
                f"Timestamps must be dates or date-times, such as {column[0]!r} is not."
            ) from None
    if dtype.is_integer():
        # Integers are nanoseconds since the epoch, as market data stores them.
        return column.cast(pl.Int64).cast(pl.Datetime("ns"))
    raise InvalidArgument(
        f"Timestamps must be dates, date-times or epoch nanoseconds, not {dtype}."
    )


def _number_columns(frame: pl.DataFrame) -> list[pl.Series]:
    columns = []
    for name in (*PRICE_COLUMNS, "volume"):
        column = frame[name]
        if not column.dtype.is_numeric():
            raise InvalidArgument(f"Column {name} must be numeric, not {column.dtype}.")
        column = column.cast(pl.Float64)
        bad = column.is_null() | column.is_nan() | column.is_infinite()
        if bad.any():
            row = int(bad.arg_max() or 0)
            raise InvalidArgument(f"Column {name} has a missing or NaN value at row {row}.")
        floor_ok = column >= 0 if name == "volume" else column > 0
        if not floor_ok.all():
            row = int((~floor_ok).arg_max() or 0)
            kind = "negative" if name == "volume" else "zero or negative"
            raise InvalidArgument(f"Column {name} has a {kind} value at row {row}.")
        columns.append(column)
    return columns


def _symbol_bars(symbol: str, frame: pl.DataFrame) -> SymbolBars:
    ts = frame["timestamp"]
    if ts.len() > 1:
        steps = ts.diff().dt.total_nanoseconds().slice(1)
        if (steps <= 0).any():
            row = int((steps <= 0).arg_max() or 0) + 1
            word = "repeats" if steps[row - 1] == 0 else "goes back in time"
            raise InvalidArgument(
                f"Bars of {symbol} must be sorted by timestamp without repeats; row {row} {word}."
            )
    high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
    if (high < low).any():
        row = int(np.argmax(high < low))
        raise InvalidArgument(f"Bar {row} of {symbol} has its high below its low.")
    return SymbolBars(
        symbol=symbol,
        timestamp=ts,
        open=_contiguous(frame["open"]),
        high=np.ascontiguousarray(high),
        low=np.ascontiguousarray(low),
        close=_contiguous(frame["close"]),
        volume=_contiguous(frame["volume"]),
    )


def _contiguous(column: pl.Series) -> F64:
    return np.ascontiguousarray(column.to_numpy(), dtype=np.float64)
