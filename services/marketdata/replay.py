"""File replay: historical ticks or bars from Parquet/CSV, paced at real or accelerated speed.

Two parts. `load_replay_file` is the edge that reads a file with Polars and turns
its rows into Quote/Trade values; `pace` is the pure part that assigns each event
the wall-clock offset (seconds after the replay starts) at which a feed should
publish it. A bar file is replayed as the ticks that rebuild it: for each bar a
quote and a trade at the open, the high, the low and the close (volume split
evenly), so the bar pipeline recomputes the file's OHLCV exactly.

File formats (column names are case-insensitive):
- ticks: `symbol`, a time column (`ts_ns` integers, or `timestamp`/`time`/`date`
  as dates, datetimes or ISO text), then `bid`, `ask`, `bid_size`, `ask_size` for
  quote rows and/or `price`, `size` for trade rows (a row with a price is a trade).
- bars: a time column, `open`, `high`, `low`, `close`, `volume`, and `symbol`
  unless the caller names the symbol (single-symbol files such as GOOG.csv, whose
  unnamed first column holds the date).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cift.runtime.errors import InvalidArgument
from cift.runtime.timestamps import NS_PER_S
from services.marketdata.instruments import tick_size_for_price
from services.marketdata.ticks import SIDE_UNKNOWN, Quote, Tick, Trade

MAX_SPEED = 1_000_000.0
_TIME_COLUMNS = ("ts_ns", "timestamp", "time", "date", "datetime", "")
_BAR_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Paced:
    """An event and when to publish it, in seconds after the replay started."""

    due_s: float
    event: Tick


def pace(events: Iterable[Tick], *, speed: float) -> Iterator[Paced]:
    """Schedule events by their timestamps: speed 1 is real time, 60 a minute per second.

    Speed 0 means as fast as possible (everything due at once). An event older than
    its predecessor is due immediately: replay never waits backwards.
    """
    if speed < 0 or speed > MAX_SPEED:
        raise InvalidArgument(f"Replay speed must be between 0 and {MAX_SPEED:g}, not {speed}.")
    first_ts: int | None = None
    due = 0.0
    for event in events:
        if first_ts is None:
            first_ts = event.ts_ns
        if speed > 0:
            due = max(due, (event.ts_ns - first_ts) / NS_PER_S / speed)
        yield Paced(due, event)


def bar_to_ticks(
    symbol: str,
    start_ns: int,
    bar_ns: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: float,
) -> list[Tick]:
    """The four quote+trade pairs that rebuild one bar, spread over its interval.

    The high comes before the low on a down bar and after it on an up bar, the
    usual assumption when a bar's path is unknown.
    """
    if not (low <= min(open_, close) and high >= max(open_, close)) or low <= 0:
        raise InvalidArgument(f"{symbol}: bar at {start_ns} has inconsistent prices.")
    if volume < 0:
        raise InvalidArgument(f"{symbol}: bar at {start_ns} has negative volume.")
    path = (open_, high, low, close) if close < open_ else (open_, low, high, close)
    step = bar_ns // 4
    share = volume / 4
    ticks: list[Tick] = []
    for k, price in enumerate(path):
        ts = start_ns + k * step
        tick = float(tick_size_for_price(price))
        ticks.append(
            Quote(symbol, ts, round(price - tick, 4), round(price + tick, 4), 100.0, 100.0)
        )
        ticks.append(Trade(symbol, ts, price, share, SIDE_UNKNOWN))
    return ticks


def _time_column(frame: pl.DataFrame) -> str:
    lowered = {c.lower(): c for c in frame.columns}
    for name in _TIME_COLUMNS:
        if name in lowered:
            return lowered[name]
    raise InvalidArgument(
        f"Replay file needs a time column (one of {', '.join(n for n in _TIME_COLUMNS if n)})."
    )


def _to_ns(frame: pl.DataFrame, column: str) -> pl.Series:
    series = frame.get_column(column)
    if series.dtype == pl.String:
        series = series.str.to_datetime(time_unit="ns", time_zone="UTC")
    if series.dtype == pl.Date:
        series = series.cast(pl.Datetime("ns"))
    if isinstance(series.dtype, pl.Datetime):
        if series.dtype.time_zone is not None:
            series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return series.dt.cast_time_unit("ns").cast(pl.Int64)
    if series.dtype.is_integer():
        return series.cast(pl.Int64)
    raise InvalidArgument(
        f"Replay time column {column!r} must hold integers (ns), dates or datetimes."
    )


def read_frame(path: str | Path) -> pl.DataFrame:
    """Read a Parquet or CSV file (by extension)."""
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"Replay file {str(file)!r} does not exist.")
    if file.suffix.lower() == ".parquet":
        return pl.read_parquet(file)
    if file.suffix.lower() == ".csv":
        return pl.read_csv(file, try_parse_dates=True)
    raise InvalidArgument(f"Replay file {file.name!r} must end in .parquet or .csv.")


def frame_to_ticks(
    frame: pl.DataFrame, *, symbol: str | None = None, bar_ns: int | None = None
) -> list[Tick]:
    """Turn a tick or bar frame into ticks in timestamp order."""
    frame = frame.rename({c: c.lower() for c in frame.columns})
    time_column = _time_column(frame)
    frame = frame.with_columns(_to_ns(frame, time_column).alias("__ts"))
    if "symbol" not in frame.columns:
        if not symbol:
            raise InvalidArgument(
                "Replay file has no symbol column; configure the symbol to replay it as."
            )
        frame = frame.with_columns(pl.lit(symbol).alias("symbol"))
    frame = frame.sort("__ts", maintain_order=True)
    if all(c in frame.columns for c in _BAR_COLUMNS):
        return _bars_to_ticks(frame, bar_ns)
    return _rows_to_ticks(frame)


def _bars_to_ticks(frame: pl.DataFrame, bar_ns: int | None) -> list[Tick]:
    if bar_ns is None:
        gaps = frame.group_by("symbol").agg(
            pl.col("__ts").diff().filter(pl.col("__ts").diff() > 0).min()
        )
        smallest = gaps.get_column("__ts").drop_nulls()
        bar_ns = int(smallest.min()) if len(smallest) else 86_400 * NS_PER_S  # type: ignore[arg-type]
        bar_ns = min(bar_ns, 86_400 * NS_PER_S)
    if bar_ns < 4:
        raise InvalidArgument("Bars must be at least 4 ns long to be replayed as ticks.")
    ticks: list[Tick] = []
    for row in frame.select("symbol", "__ts", *_BAR_COLUMNS).iter_rows():
        sym, ts, o, h, lo, c, v = row
        if None in row:
            raise InvalidArgument(f"{sym}: bar at {ts} has missing values.")
        ticks.extend(
            bar_to_ticks(
                str(sym), int(ts), bar_ns, float(o), float(h), float(lo), float(c), float(v)
            )
        )
    ticks.sort(key=lambda t: t.ts_ns)
    return ticks


def _rows_to_ticks(frame: pl.DataFrame) -> list[Tick]:
    has_quotes = all(c in frame.columns for c in ("bid", "ask", "bid_size", "ask_size"))
    has_trades = all(c in frame.columns for c in ("price", "size"))
    if not (has_quotes or has_trades):
        raise InvalidArgument(
            "Replay file needs bid/ask/bid_size/ask_size (quotes), price/size (trades) or OHLCV (bars) columns."
        )
    empty = pl.lit(None, dtype=pl.Float64)
    columns = [
        pl.col("symbol").cast(pl.String),
        pl.col("__ts"),
        *(
            pl.col(c).cast(pl.Float64) if has_quotes else empty.alias(c)
            for c in ("bid", "ask", "bid_size", "ask_size")
        ),
        *(pl.col(c).cast(pl.Float64) if has_trades else empty.alias(c) for c in ("price", "size")),
    ]
    ticks: list[Tick] = []
    for sym, ts, bid, ask, bid_size, ask_size, price, size in frame.select(columns).iter_rows():
        if price is not None and size is not None:
            ticks.append(Trade(sym, ts, price, size, SIDE_UNKNOWN))
        elif None not in (bid, ask, bid_size, ask_size):
            ticks.append(Quote(sym, ts, bid, ask, bid_size, ask_size))
        else:
            raise InvalidArgument(f"{sym}: row at {ts} is neither a complete quote nor a trade.")
    return ticks


def load_replay_file(
    path: str | Path, *, symbol: str | None = None, bar_ns: int | None = None
) -> list[Tick]:
    """Read a replay file into ticks (the I/O edge of this module)."""
    return frame_to_ticks(read_frame(path), symbol=symbol, bar_ns=bar_ns)


def sample_data_path() -> Path | None:
    """Daily GOOG bars shipped by the `backtesting` package (test extra), if installed."""
    try:
        import backtesting  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
    return path if path.is_file() else None
