"""File replay: reading tick and bar files, pacing, and rebuilding bars exactly."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cift.runtime.errors import InvalidArgument
from services.marketdata.bars import Bar, BarBuilder, parse_timeframe
from services.marketdata.replay import (
    bar_to_ticks,
    load_replay_file,
    pace,
    sample_data_path,
)
from services.marketdata.ticks import Quote, Tick, Trade

S = 1_000_000_000


def ticks_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", "MSFT"],
            "ts_ns": [3 * S, 1 * S, 2 * S],
            "bid": [100.0, 99.99, None],
            "ask": [100.02, 100.01, None],
            "bid_size": [100.0, 200.0, None],
            "ask_size": [300.0, 100.0, None],
            "price": [None, None, 400.5],
            "size": [None, None, 25.0],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tick_files_replay_in_timestamp_order(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ticks{suffix}"
    frame = ticks_frame()
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    ticks = load_replay_file(path)
    assert ticks == [
        Quote("AAPL", 1 * S, 99.99, 100.01, 200.0, 100.0),
        Trade("MSFT", 2 * S, 400.5, 25.0),
        Quote("AAPL", 3 * S, 100.0, 100.02, 100.0, 300.0),
    ]


def test_iso_timestamps_are_read_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("symbol,timestamp,price,size\nSPY,2024-01-02T14:30:00Z,470.1,10\n")
    (trade,) = load_replay_file(path)
    assert trade.ts_ns == 1_704_205_800 * S


def test_pacing_follows_timestamps_divided_by_speed() -> None:
    ticks = [Trade("A", ts, 1.0, 1.0) for ts in (10 * S, 12 * S, 11 * S, 20 * S)]
    assert [p.due_s for p in pace(ticks, speed=1.0)] == [0.0, 2.0, 2.0, 10.0]
    assert [p.due_s for p in pace(ticks, speed=10.0)] == [0.0, 0.2, 0.2, 1.0]
    assert [p.due_s for p in pace(ticks, speed=0.0)] == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(InvalidArgument, match="speed"):
        list(pace(ticks, speed=-1.0))


def rebuild_daily(ticks: list[Tick]) -> list[Bar]:
    builder = BarBuilder([parse_timeframe("1Day")])
    bars: list[Bar] = []
    for tick in ticks:
        if isinstance(tick, Trade):
            bars += builder.on_trade(tick.symbol, tick.ts_ns, tick.price, tick.size)
        else:
            bars += builder.advance(tick.symbol, tick.ts_ns)
    return bars + builder.open_bars()


def test_bar_files_replay_as_ticks_that_rebuild_the_same_bars(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pl.DataFrame(
        {
            "date": ["2024-01-02", "2024-01-03"],
            "open": [10.0, 11.0],
            "high": [12.0, 11.5],
            "low": [9.5, 10.0],
            "close": [11.0, 10.2],
            "volume": [1000.0, 4000.0],
        }
    ).with_columns(pl.col("date").str.to_date()).write_parquet(path)
    bars = rebuild_daily(load_replay_file(path, symbol="XYZ"))
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (10.0, 12.0, 9.5, 11.0, 1000.0),
        (11.0, 11.5, 10.0, 10.2, 4000.0),
    ]


@pytest.mark.skipif(
    sample_data_path() is None, reason="the backtesting package (test extra) ships GOOG.csv"
)
def test_the_shipped_goog_daily_series_replays_into_identical_daily_bars() -> None:
    path = sample_data_path()
    assert path is not None
    source = pl.read_csv(path, try_parse_dates=True)
    bars = rebuild_daily(load_replay_file(path, symbol="GOOG"))
    assert len(bars) == source.height
    for bar, row in zip(bars, source.iter_rows(named=True), strict=True):
        assert (bar.open, bar.high, bar.low, bar.close) == (
            row["Open"],
            row["High"],
            row["Low"],
            row["Close"],
        )
        assert bar.volume == row["Volume"]


def test_bad_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_replay_file(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InvalidArgument, match=r"\.parquet or \.csv"):
        load_replay_file(tmp_path / "x.json")
    (tmp_path / "no_time.csv").write_text("symbol,price,size\nA,1,1\n")
    with pytest.raises(InvalidArgument, match="time column"):
        load_replay_file(tmp_path / "no_time.csv")
    (tmp_path / "no_symbol.csv").write_text("ts_ns,price,size\n1,1,1\n")
    with pytest.raises(InvalidArgument, match="symbol"):
        load_replay_file(tmp_path / "no_symbol.csv")
    (tmp_path / "half.csv").write_text("symbol,ts_ns,bid,ask,bid_size,ask_size\nA,1,1.0,,1,1\n")
    with pytest.raises(InvalidArgument, match="neither"):
        load_replay_file(tmp_path / "half.csv")
    with pytest.raises(InvalidArgument, match="inconsistent"):
        bar_to_ticks("A", 0, 60 * S, 10.0, 9.0, 8.0, 9.5, 100.0)
