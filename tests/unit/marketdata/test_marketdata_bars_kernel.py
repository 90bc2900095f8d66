"""The one-pass bar kernel gives the very bars of a group-by (Polars and pandas alike).

Prices, volumes and counts must be equal exactly; notional (a float sum) is equal in
the order the trades came, which is the order all three sum in here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cift.parallel_tasks import HELPERS
from services.marketdata import bars_grid
from services.marketdata.bars import (
    Bar,
    BarBuilder,
    _aggregate_with_polars,
    _string_views,
    aggregate_trades,
    parse_timeframe,
)
from services.marketdata.bars_kernel import (
    NO_BUCKET,
    TOO_LONG,
    TOO_MANY,
    codes_from_string_views,
    ticks_that_move_bars,
)

SECOND = 1_000_000_000
EXACT = ("symbol", "start_ns", "open", "high", "low", "close", "volume", "trade_count")


def frame(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    symbols, ts, price, size = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pl.DataFrame(
        {"symbol": list(symbols), "ts_ns": list(ts), "price": list(price), "size": list(size)},
        schema={"symbol": pl.String, "ts_ns": pl.Int64, "price": pl.Float64, "size": pl.Float64},
    )


def random_trades(n: int, names: list[str], seconds: int, seed: int) -> pl.DataFrame:
    """n trades in time order over `seconds`, symbols drawn from `names`, cent prices."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "symbol": np.array(names)[rng.integers(0, len(names), n)],
            "ts_ns": np.sort(rng.integers(0, seconds * SECOND, n)),
            "price": np.round(rng.uniform(1, 500, n), 2),
            "size": rng.integers(1, 300, n).astype(float),
        }
    )


def pandas_bars(trades: pl.DataFrame, bucket_ns: int) -> pl.DataFrame:
    work = trades.to_pandas()
    work["start_ns"] = work["ts_ns"] - work["ts_ns"] % bucket_ns
    work["notional"] = work["price"] * work["size"]
    out = (
        work.groupby(["symbol", "start_ns"], sort=True)
        .agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("size", "sum"),
            notional=("notional", "sum"),
            trade_count=("price", "size"),
        )
        .reset_index()
    )
    return pl.from_pandas(out)


def assert_same(ours: pl.DataFrame, theirs: pl.DataFrame) -> None:
    assert ours.height == theirs.height
    for column in EXACT:
        assert ours[column].to_list() == theirs[column].to_list(), column
    assert np.allclose(ours["notional"].to_numpy(), theirs["notional"].to_numpy(), rtol=1e-12)


trades = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT", "A", "ZZ", "BRK.B"]),
        st.integers(-5 * SECOND, 20 * SECOND),
        st.integers(1, 100_000).map(lambda cents: cents / 100),
        st.integers(1, 1_000).map(float),
    ),
    max_size=200,
)


@settings(max_examples=80, deadline=None)
@given(
    trades,
    st.sampled_from(["1Sec", "1Min", "5Min"]),
    st.sampled_from(["string", "categorical", "enum"]),
)
def test_time_ordered_trades_give_the_bars_of_polars_and_pandas(
    rows: list[tuple[str, int, float, float]], timeframe: str, symbol_type: str
) -> None:
    rows.sort(key=lambda r: r[1])
    trades_frame = frame(rows)
    tf = parse_timeframe(timeframe)
    typed = trades_frame
    if symbol_type == "categorical":
        typed = trades_frame.with_columns(pl.col("symbol").cast(pl.Categorical))
    elif symbol_type == "enum":
        names = sorted(set(trades_frame["symbol"].to_list()), reverse=True)
        typed = trades_frame.with_columns(pl.col("symbol").cast(pl.Enum(names)))
    ours = aggregate_trades(typed, tf)
    assert ours["symbol"].dtype == pl.String
    assert_same(ours, _aggregate_with_polars(trades_frame, tf))
    if rows:
        assert_same(ours, pandas_bars(trades_frame, tf.ns))


@settings(max_examples=60, deadline=None)
@given(
    trades,
    st.sampled_from(["1Sec", "1Min"]),
    st.sampled_from(["string", "categorical"]),
    st.booleans(),
)
def test_trades_cut_in_chunks_for_several_cores_give_the_bars_of_polars(
    rows: list[tuple[str, int, float, float]], timeframe: str, symbol_type: str, in_time: bool
) -> None:
    """Chunks cut at bucket edges fill the grid at once; when the trades are not in time
    order across symbols, chunks may share a bucket and the grid is filled again by one
    thread: the same bars either way."""
    if in_time:
        rows.sort(key=lambda r: r[1])
    else:
        rows.sort(key=lambda r: (r[0], r[1]))  # each symbol's trades in time order
    trades_frame = frame(rows)
    if symbol_type == "categorical":
        trades_frame = trades_frame.with_columns(pl.col("symbol").cast(pl.Categorical))
    tf = parse_timeframe(timeframe)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bars_grid, "PARALLEL_MIN_TRADES", 0)
        ours = aggregate_trades(trades_frame, tf)
    assert_same(ours, _aggregate_with_polars(trades_frame, tf))


def test_a_million_trades_in_time_order_give_the_bars_of_pandas() -> None:
    # Past PARALLEL_MIN_TRADES: cut in chunks for the cores, bucket edges inside.
    trades_frame = random_trades(1_000_000, [f"S{i:02d}" for i in range(40)], 3_600, seed=11)
    tf = parse_timeframe("1Min")
    expected = pandas_bars(trades_frame, tf.ns)
    assert_same(aggregate_trades(trades_frame, tf), expected)
    as_codes = trades_frame.with_columns(pl.col("symbol").cast(pl.Categorical))
    assert_same(aggregate_trades(as_codes, tf), expected)


def test_chunks_sharing_a_bucket_are_filled_again_by_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each symbol's trades in time order, the symbols one after the other: every chunk
    # spans the whole hour, so the chunks overlap and one thread fills the grid again.
    rows = [("A", 0, 1.0, 1.0)]
    rows += [("B", i * SECOND, 2.0 + i % 7, 1.0) for i in range(3_600)]
    rows += [("A", i * SECOND, 3.0 + i % 5, 2.0) for i in range(1, 3_600)]
    calls: list[int] = []
    fill_chunk = bars_grid._fill_chunk

    def counted(*args: Any) -> None:
        calls.append(1)
        fill_chunk(*args)

    monkeypatch.setattr(bars_grid, "PARALLEL_MIN_TRADES", 0)
    monkeypatch.setattr(bars_grid, "_fill_chunk", counted)
    tf = parse_timeframe("1Min")
    ours = aggregate_trades(frame(rows), tf)
    assert len(calls) == bars_grid.CHUNKS_PER_CORE * (HELPERS + 1) + 1
    assert_same(ours, pandas_bars(frame(rows), tf.ns))


@pytest.mark.parametrize("others", [300, 600])
def test_dictionary_codes_past_the_first_row_width_widen_the_grid_or_leave_it(
    others: int,
) -> None:
    # A slice of a Categorical keeps its dictionary: ids 300.. are past the grid's first
    # guess of columns, which then takes the largest id; past 512 the grid is left for
    # the per-symbol kernel. The same bars every way.
    rows = [(f"Y{i % 3}", i * SECOND, 1.0 + i, 1.0) for i in range(200)]
    names = [f"Z{i}" for i in range(others)]
    symbols = pl.Series(names + [r[0] for r in rows]).cast(pl.Categorical).slice(others)
    trades_frame = frame(rows).with_columns(symbols.alias("symbol"))
    assert trades_frame["symbol"].to_physical().min() == others
    tf = parse_timeframe("1Min")
    assert_same(aggregate_trades(trades_frame, tf), pandas_bars(frame(rows), tf.ns))


def test_a_symbol_ahead_of_the_others_in_time_still_gets_every_bar() -> None:
    # In order within each symbol, not across: the first guess of room is too small.
    rows = [("A", i * 60 * SECOND, 10.0 + i, 1.0) for i in range(50)]
    rows += [("B", i * SECOND, 20.0, 2.0) for i in range(5)]
    tf = parse_timeframe("1Min")
    ours = aggregate_trades(frame(rows), tf)
    assert ours.height == 51
    assert_same(ours, _aggregate_with_polars(frame(rows), tf))


def test_trades_going_back_in_time_within_a_symbol_are_grouped_as_polars_does() -> None:
    rows = [
        ("A", 70 * SECOND, 11.0, 1.0),
        ("A", 5 * SECOND, 10.0, 2.0),
        ("A", 75 * SECOND, 12.0, 3.0),
    ]
    tf = parse_timeframe("1Min")
    ours = aggregate_trades(frame(rows), tf)
    assert ours["start_ns"].to_list() == [0, 60 * SECOND]
    assert ours["open"].to_list() == [10.0, 11.0] and ours["close"].to_list() == [10.0, 12.0]


def test_bucket_edges_and_times_before_1970_fall_in_the_floor_bucket() -> None:
    rows = [
        ("A", -1, 1.0, 1.0),
        ("A", 0, 2.0, 1.0),
        ("A", SECOND - 1, 3.0, 1.0),
        ("A", SECOND, 4.0, 1.0),
    ]
    bars = aggregate_trades(frame(rows), parse_timeframe("1Sec"))
    assert bars["start_ns"].to_list() == [-SECOND, 0, SECOND]
    assert bars["trade_count"].to_list() == [1, 2, 1]
    assert bars["vwap"].to_list() == [1.0, 2.5, 4.0]


def test_no_trades_give_no_bars() -> None:
    bars = aggregate_trades(frame([]), parse_timeframe("1Min"))
    assert bars.height == 0 and "vwap" in bars.columns


@pytest.mark.parametrize("symbol_type", [pl.String, pl.Categorical])
def test_many_symbols_interleaved(symbol_type: pl.DataType) -> None:
    trades_frame = random_trades(20_000, [f"S{i:03d}" for i in range(300)], 3_600, seed=3)
    tf = parse_timeframe("1Min")
    ours = aggregate_trades(trades_frame.with_columns(pl.col("symbol").cast(symbol_type)), tf)
    assert_same(ours, pandas_bars(trades_frame, tf.ns))


def test_strings_longer_than_a_view_holds_inline_still_give_the_group_by_bars() -> None:
    # Arrow keeps strings of up to 12 bytes inside the view; longer ones are cast instead.
    rows = [
        ("A", 1 * SECOND, 1.0, 1.0),
        ("A.VERY.LONG.SYMBOL", 2 * SECOND, 2.0, 2.0),
        ("", 3 * SECOND, 3.0, 3.0),
        ("A", 61 * SECOND, 4.0, 4.0),
        ("TWELVE_BYTES", 62 * SECOND, 5.0, 5.0),
    ]
    tf = parse_timeframe("1Min")
    assert_same(aggregate_trades(frame(rows), tf), pandas_bars(frame(rows), tf.ns))
    assert_same(aggregate_trades(frame(rows[2:]), tf), pandas_bars(frame(rows[2:]), tf.ns))


def test_thousands_of_distinct_strings_grow_the_code_table() -> None:
    trades_frame = random_trades(30_000, [f"X{i}" for i in range(5_000)], 600, seed=5)
    tf = parse_timeframe("1Min")
    assert_same(aggregate_trades(trades_frame, tf), pandas_bars(trades_frame, tf.ns))
    # A slice starts inside the column's views.
    part = trades_frame.slice(1_234, 10_000)
    assert_same(aggregate_trades(part, tf), pandas_bars(part, tf.ns))


def test_string_views_number_strings_in_order_of_first_occurrence() -> None:
    symbols = pl.Series(["B", "A", "B", "", "A", "C"])
    views = _string_views(symbols)
    assert views is not None
    codes = np.empty(len(views), np.uint32)
    assert codes_from_string_views(views, 10, codes) == 4
    assert codes.tolist() == [0, 1, 0, 2, 1, 3]
    assert codes_from_string_views(views, 3, codes) == TOO_MANY
    long = _string_views(pl.Series(["A", "THIRTEEN_BYTE"]))
    assert long is not None
    assert codes_from_string_views(long, 10, np.empty(2, np.uint32)) == TOO_LONG


def test_null_symbols_take_the_group_by() -> None:
    trades_frame = pl.DataFrame(
        {
            "symbol": ["A", None, "A"],
            "ts_ns": [1, 2, 3],
            "price": [1.0, 2.0, 3.0],
            "size": [1.0] * 3,
        }
    )
    bars = aggregate_trades(trades_frame, parse_timeframe("1Sec"))
    assert bars.sort("symbol", nulls_last=True)["trade_count"].to_list() == [2, 1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.booleans(),
            st.integers(-3 * 10**9, 5 * 10**9),
            st.integers(1, 50),
        ),
        min_size=1,
        max_size=200,
    ),
    st.integers(0, 2),
)
def test_skipping_quotes_inside_their_bucket_leaves_the_bar_builder_as_every_tick_does(
    ticks: list[tuple[int, bool, int, int]], batches: int
) -> None:
    """The ingest hands the builder only the ticks `ticks_that_move_bars` marks, then one
    clock advance per symbol: bars closed, open bars and clocks equal feeding every tick
    (times out of order and symbols first seen in a later batch included)."""
    symbols = ["AAPL", "MSFT", "SPY"]
    every = BarBuilder()
    skipping = BarBuilder()
    closed_every: list[Bar] = []
    closed_skipping: list[Bar] = []
    cut = len(ticks) * batches // 3
    for batch in (ticks[:cut], ticks[cut:]):
        for code, trade, ts, price in batch:
            if trade:
                closed_every += every.on_trade(symbols[code], ts, float(price), 1.0)
            else:
                closed_every += every.advance(symbols[code], ts)
        if not batch:
            continue
        codes = np.array([t[0] for t in batch], dtype=np.int64)
        is_trade = np.array([t[1] for t in batch], dtype=np.bool_)
        ts_ns = np.array([t[2] for t in batch], dtype=np.int64)
        ends = [skipping.bucket_end(s) for s in symbols]
        bucket_end = np.array([NO_BUCKET if e is None else e for e in ends], dtype=np.int64)
        needed = np.empty(len(batch), dtype=np.bool_)
        newest = np.full(3, NO_BUCKET, dtype=np.int64)
        last_quote = np.full(3, -1, dtype=np.int64)
        ticks_that_move_bars(
            codes, is_trade, ts_ns, bucket_end, skipping.finest_ns, needed, newest, last_quote
        )
        for (code, trade, ts, price), need in zip(batch, needed.tolist(), strict=True):
            if need and trade:
                closed_skipping += skipping.on_trade(symbols[code], ts, float(price), 1.0)
            elif need:
                closed_skipping += skipping.advance(symbols[code], ts)
        for code in range(3):
            if newest[code] != NO_BUCKET:
                assert skipping.advance(symbols[code], int(newest[code])) == []
        for code in range(3):
            quotes = [i for i, t in enumerate(batch) if t[0] == code and not t[1]]
            assert last_quote[code] == (quotes[-1] if quotes else -1)
    assert closed_skipping == closed_every
    assert skipping.open_bars() == every.open_bars()
    assert skipping.clocks() == every.clocks()
