"""`closed_trades` over whole columns is `TradeBook` fed fill by fill.

When every trade is one fill from flat and one fill back to flat, `closed_trades`
pairs the fills with NumPy; any other sequence goes through `TradeBook.record`.
Both must give the frame the per-fill book gives, to the last bit.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from cift.backtest.bars import split_bars
from cift.backtest.synthetic import random_walk_bars
from cift.backtest.trades import FillColumns, FillLog, FillRow, TradeBook, closed_trades
from cift.trading.fill_model import NO_COMMISSION

BARS = split_bars(random_walk_bars(500))[0]
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(900), places=2)
qtys = st.decimals(min_value=Decimal(1), max_value=Decimal(5000), places=0)
fractional = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(50), places=3)
commissions = st.decimals(min_value=Decimal(0), max_value=Decimal(20), places=2)


def per_fill(fills: list[FillRow]) -> pl.DataFrame:
    book = TradeBook(BARS)
    for bar, buy, qty, price, commission, after, _ in fills:
        book.record(bar, buy, float(qty), float(price), float(commission), float(after))
    return book.frame()


def log_of(fills: list[FillRow]) -> FillLog:
    """The rows as the broker logs them: each fill's fields, one fill after the other."""
    return [field for row in fills for field in row]


def rows(steps: list[tuple[bool, Decimal, Decimal, Decimal]]) -> list[FillRow]:
    """Fills in order, one bar apart, each with the position it leaves."""
    held = Decimal(0)
    out: list[FillRow] = []
    for bar, (buy, qty, price, commission) in enumerate(steps):
        held += qty if buy else -qty
        out.append((bar, buy, qty, price, commission, held, Decimal(0)))
    return out


@settings(max_examples=200, deadline=None)
@given(
    trades=st.lists(
        st.tuples(
            st.booleans(), st.one_of(qtys, fractional), prices, prices, commissions, commissions
        ),
        max_size=30,
    ),
    left_open=st.booleans(),
)
def test_round_trips_paired_by_columns_match_the_book(
    trades: list[tuple[bool, Decimal, Decimal, Decimal, Decimal, Decimal]], left_open: bool
) -> None:
    steps = []
    for buy, qty, entry, exit_, c_in, c_out in trades:
        steps += [(buy, qty, entry, c_in), (not buy, qty, exit_, c_out)]
    if left_open and trades:
        steps.pop()  # the last trade stays open: not reported
    fills = rows(steps)
    assert_frame_equal(closed_trades(BARS, FillColumns.of(log_of(fills))), per_fill(fills))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.one_of(qtys, fractional), prices, commissions), max_size=30
    ),
)
def test_any_fills_give_the_books_trades(
    steps: list[tuple[bool, Decimal, Decimal, Decimal]],
) -> None:
    """Scaling in and out, crossing zero: the columns path must step aside or agree."""
    fills = rows(steps)
    assert_frame_equal(closed_trades(BARS, FillColumns.of(log_of(fills))), per_fill(fills))


def test_a_fill_through_zero_splits_into_two_trades() -> None:
    fills = rows(
        [
            (True, Decimal(10), Decimal("100.5"), Decimal("0.20")),
            (False, Decimal(15), Decimal("101.25"), Decimal("0.30")),
            (True, Decimal(5), Decimal(99), Decimal("0.10")),
        ]
    )
    frame = closed_trades(BARS, FillColumns.of(log_of(fills)))
    assert frame["size"].to_list() == [10.0, -5.0]
    assert frame["entry_bar"].to_list() == [0, 1]
    assert frame["exit_bar"].to_list() == [1, 2]
    assert np.allclose(frame["commission"].to_numpy(), [0.4, 0.2])
    assert_frame_equal(frame, per_fill(fills))


def test_no_fills_no_trades() -> None:
    assert closed_trades(BARS, FillColumns.of([])).height == 0
    assert closed_trades(BARS, FillColumns.of([])).schema == per_fill([]).schema


def test_free_commissions_read_as_the_floats_they_are() -> None:
    """The all-`NO_COMMISSION` column is zeros without converting; any other is converted."""
    steps = [
        (True, Decimal(3), Decimal("10.5"), NO_COMMISSION),
        (False, Decimal(3), Decimal(11), NO_COMMISSION),
    ]
    free = FillColumns.of(log_of(rows(steps)))
    assert free.commission.tolist() == [float(NO_COMMISSION)] * 2
    assert not np.signbit(free.commission).any()
    charged = FillColumns.of(
        log_of(rows([steps[0], (False, Decimal(3), Decimal(11), Decimal("0.25"))]))
    )
    assert charged.commission.tolist() == [0.0, 0.25]
