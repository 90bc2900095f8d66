"""Bars: incremental building, closing on time advance, restart exactness, batch agreement."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from services.marketdata.bars import (
    TIMEFRAMES,
    Bar,
    BarBuilder,
    aggregate_trades,
    bars_to_frame,
    parse_timeframe,
    resample_bars,
)
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from services.marketdata.ticks import Quote, Tick, Trade

S = 1_000_000_000


def feed(builder: BarBuilder, ticks: list[Tick]) -> list[Bar]:
    closed: list[Bar] = []
    for tick in ticks:
        if isinstance(tick, Trade):
            closed += builder.on_trade(tick.symbol, tick.ts_ns, tick.price, tick.size)
        else:
            closed += builder.advance(tick.symbol, tick.ts_ns)
    return closed


def test_a_bar_closes_when_the_symbols_clock_passes_its_end() -> None:
    builder = BarBuilder([parse_timeframe("1Sec")])
    assert builder.on_trade("AAPL", 10 * S + 1, 100.0, 10) == []
    assert builder.on_trade("AAPL", 10 * S + 2, 101.0, 30) == []
    assert builder.on_trade("AAPL", 10 * S + 3, 99.0, 10) == []
    # Another symbol's clock does not close AAPL's bar.
    assert builder.advance("MSFT", 20 * S) == []
    (bar,) = builder.advance("AAPL", 11 * S)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count) == (
        100.0,
        101.0,
        99.0,
        99.0,
        50,
        3,
    )
    assert bar.start_ns == 10 * S
    assert bar.vwap == pytest.approx((100 * 10 + 101 * 30 + 99 * 10) / 50)
    assert builder.open_bar("AAPL", "1Sec") is None


def test_every_timeframe_is_aligned_to_its_own_bucket() -> None:
    builder = BarBuilder()
    ts = 1_700_000_123 * S + 456
    builder.on_trade("SPY", ts, 500.0, 1)
    for timeframe in TIMEFRAMES:
        bar = builder.open_bar("SPY", timeframe.name)
        assert bar is not None
        assert bar.start_ns % timeframe.ns == 0
        assert bar.start_ns <= ts < bar.start_ns + timeframe.ns


def test_late_trade_is_counted_and_left_out() -> None:
    builder = BarBuilder([parse_timeframe("1Sec"), parse_timeframe("1Min")])
    builder.on_trade("AAPL", 5 * S, 100.0, 1)
    builder.advance("AAPL", 7 * S)
    builder.on_trade("AAPL", 6 * S, 999.0, 1)
    assert builder.late_trades == 1
    minute = builder.open_bar("AAPL", "1Min")
    assert minute is not None and minute.high == 100.0 and minute.volume == 1


def test_unknown_timeframe_is_invalid_argument_listing_valid_ones() -> None:
    with pytest.raises(InvalidArgument, match="1Sec, 1Min, 5Min, 15Min, 1Hour, 1Day"):
        parse_timeframe("2Min")
    assert parse_timeframe("1min").name == "1Min"
    with pytest.raises(InvalidArgument):
        BarBuilder([])


def simulated(count: int, seed: int = 3) -> list[Tick]:
    return Simulator(default_universe(), seed=seed, rate_per_symbol=2.0).next_events(count)


def test_bars_rebuilt_after_a_crash_equal_bars_built_without_one() -> None:
    ticks = simulated(30_000)
    straight = BarBuilder()
    expected = feed(straight, ticks)
    for crash_at in (1, 12_345, 29_999):
        before = BarBuilder()
        closed = feed(before, ticks[:crash_at])
        # What the ingest persists with its offsets: the open bars and the symbol clocks.
        resumed = BarBuilder()
        resumed.restore(before.open_bars(), before.clocks())
        closed += feed(resumed, ticks[crash_at:])
        assert closed == expected
        assert sorted(resumed.open_bars(), key=key) == sorted(straight.open_bars(), key=key)


def key(bar: Bar) -> tuple[str, str, int]:
    return bar.symbol, bar.timeframe, bar.start_ns


def trades_frame(ticks: list[Tick]) -> pl.DataFrame:
    trades = [t for t in ticks if isinstance(t, Trade)]
    return pl.DataFrame(
        {
            "symbol": [t.symbol for t in trades],
            "ts_ns": [t.ts_ns for t in trades],
            "price": [t.price for t in trades],
            "size": [t.size for t in trades],
        }
    )


def assert_same_bars(incremental: list[Bar], batch: pl.DataFrame) -> None:
    rows = sorted(incremental, key=key)
    assert len(rows) == batch.height
    for bar, row in zip(rows, batch.iter_rows(named=True), strict=True):
        assert (bar.symbol, bar.start_ns) == (row["symbol"], row["start_ns"])
        assert (bar.open, bar.high, bar.low, bar.close) == (
            row["open"],
            row["high"],
            row["low"],
            row["close"],
        )
        assert bar.volume == row["volume"] and bar.trade_count == row["trade_count"]
        assert math.isclose(bar.notional, row["notional"], rel_tol=1e-12)


@pytest.mark.parametrize("timeframe", ["1Sec", "1Min", "5Min"])
def test_incremental_bars_equal_the_polars_batch_aggregation(timeframe: str) -> None:
    ticks = simulated(20_000)
    tf = parse_timeframe(timeframe)
    builder = BarBuilder([tf])
    bars = feed(builder, ticks) + builder.open_bars()
    assert_same_bars(bars, aggregate_trades(trades_frame(ticks), tf))


prices = st.floats(min_value=0.5, max_value=1000, allow_nan=False).map(lambda p: round(p, 2))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 5 * S), prices, st.integers(1, 500)),
        min_size=1,
        max_size=80,
    )
)
def test_any_in_order_trade_sequence_gives_the_same_bars_both_ways(
    raw: list[tuple[str, int, float, int]],
) -> None:
    raw.sort(key=lambda r: r[1])
    ticks: list[Tick] = [Trade(sym, ts, price, float(size)) for sym, ts, price, size in raw]
    tf = parse_timeframe("1Sec")
    builder = BarBuilder([tf])
    bars = feed(builder, ticks) + builder.open_bars()
    assert builder.late_trades == 0
    assert_same_bars(bars, aggregate_trades(trades_frame(ticks), tf))


def test_resampled_minute_bars_equal_hour_bars_built_from_ticks() -> None:
    ticks = simulated(20_000, seed=11)
    minute, hour = parse_timeframe("1Min"), parse_timeframe("1Hour")
    builder = BarBuilder([minute, hour])
    bars = feed(builder, ticks) + builder.open_bars()
    minutes = bars_to_frame(b for b in bars if b.timeframe == "1Min")
    hours = [b for b in bars if b.timeframe == "1Hour"]
    assert_same_bars(hours, resample_bars(minutes, hour))


def test_quotes_alone_advance_the_clock_without_making_bars() -> None:
    builder = BarBuilder()
    assert (
        feed(
            builder,
            [Quote("AAPL", 1, 1.0, 1.01, 100, 100), Quote("AAPL", 5 * S, 1.0, 1.01, 100, 100)],
        )
        == []
    )
    assert builder.open_bars() == []
