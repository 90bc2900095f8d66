"""Positions, cash, realized P&L (average cost) and account figures, to the cent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from cift.trading.ledger import (
    Balances,
    Ledger,
    Position,
    account_figures,
    buying_power,
    released_reservation,
    reservation_for,
    reservation_price,
    settle_fill,
)
from cift.trading.vocabulary import OrderType, Side

D = Decimal
OPENING = D(100000)
BUY, SELL = Side.BUY, Side.SELL


def test_buy_then_sell_higher_realizes_the_gain_to_the_cent() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(10), D("100.25"))
    assert ledger.cash == D("98997.50")
    assert ledger.position("AAPL") == Position("AAPL", D(10), D("1002.50"))
    effect = ledger.apply_fill("AAPL", SELL, D(10), D("101.10"))
    assert effect.realized_pnl == D("8.50")
    assert ledger.cash == D("100008.50")
    assert ledger.position("AAPL") == Position("AAPL", D(0), D(0))


def test_average_cost_blends_two_buys_and_partial_close_keeps_the_average() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(10), D(100))
    ledger.apply_fill("AAPL", BUY, D(30), D(104))
    assert ledger.position("AAPL").avg_entry_price == D(103)
    effect = ledger.apply_fill("AAPL", SELL, D(15), D(110))
    assert effect.realized_pnl == D(105)  # 15 * (110 - 103)
    after = ledger.position("AAPL")
    assert (after.qty, after.cost_basis, after.avg_entry_price) == (D(25), D(2575), D(103))


def test_short_then_cover_lower_realizes_the_gain() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("TSLA", SELL, D(5), D("200.00"))
    assert ledger.cash == D("101000.00")
    assert ledger.position("TSLA") == Position("TSLA", D(-5), D("-1000.00"))
    assert ledger.position("TSLA").avg_entry_price == D(200)
    effect = ledger.apply_fill("TSLA", BUY, D(2), D("190.00"))
    assert effect.realized_pnl == D("20.00")
    effect = ledger.apply_fill("TSLA", BUY, D(3), D("210.00"))
    assert effect.realized_pnl == D("-30.00")
    assert ledger.cash == D("99990.00")
    assert ledger.realized_pnl == D("-10.00")


def test_long_flips_short_through_zero_in_one_fill() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(10), D(100))
    effect = ledger.apply_fill("AAPL", SELL, D(25), D(110))
    assert effect.realized_pnl == D(100)  # the 10 closed shares
    assert effect.position == Position("AAPL", D(-15), D(-1650))  # 15 opened short at 110
    assert ledger.cash == OPENING - 1000 + 2750


def test_short_flips_long_through_zero_in_one_fill() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", SELL, D(4), D("50.00"))
    effect = ledger.apply_fill("AAPL", BUY, D(10), D("45.00"))
    assert effect.realized_pnl == D("20.00")
    assert effect.position == Position("AAPL", D(6), D("270.00"))


def test_fractional_amounts_round_half_up_to_the_cent() -> None:
    ledger = Ledger(cash=OPENING)
    effect = ledger.apply_fill("FRAC", BUY, D("0.5"), D("100.33"))  # 50.165
    assert effect.amount == D("50.17")
    assert ledger.cash == D("99949.83")


def test_commission_reduces_cash_but_not_realized_pnl() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(10), D(100), D("1.00"))
    effect = ledger.apply_fill("AAPL", SELL, D(10), D(101), D("1.00"))
    assert effect.realized_pnl == D(10)
    assert ledger.cash == OPENING + 10 - 2
    assert ledger.commissions == D(2)


def test_partial_close_with_uneven_division_leaves_no_stray_cents() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(3), D("10.00"))
    ledger.apply_fill("AAPL", BUY, D(0 + 3), D("10.01"))  # cost 60.03 for 6 shares
    first = ledger.apply_fill("AAPL", SELL, D(1), D("10.00"))
    second = ledger.apply_fill("AAPL", SELL, D(5), D("10.00"))
    assert first.realized_pnl + second.realized_pnl == D("-0.03")
    assert ledger.position("AAPL").cost_basis == 0


@pytest.mark.parametrize(("qty", "price"), [(D(0), D(1)), (D(-1), D(1)), (D(1), D(0))])
def test_a_fill_with_nonpositive_quantity_or_price_is_refused(qty: Decimal, price: Decimal) -> None:
    with pytest.raises(InvalidArgument):
        settle_fill(Position("AAPL"), BUY, qty, price)


fills_strategy = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT"]),
        st.sampled_from([BUY, SELL]),
        st.decimals(min_value=D("0.001"), max_value=D(500), places=3),
        st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
        st.decimals(min_value=D(0), max_value=D(5), places=2),
    ),
    max_size=40,
)


@given(fills_strategy)
def test_cash_plus_positions_at_cost_minus_realized_pnl_balances_for_any_fills(
    fills: list[tuple[str, Side, Decimal, Decimal, Decimal]],
) -> None:
    ledger = Ledger(cash=OPENING)
    net_cost = gross_cost = D(0)
    for symbol, side, qty, price, commission in fills:
        effect = ledger.apply_fill(symbol, side, qty, price, commission)
        net_cost += effect.net_cost_delta
        gross_cost += effect.gross_cost_delta
        assert effect.cash_delta == (-effect.amount if side is BUY else effect.amount) - commission
    assert ledger.cash + ledger.net_cost - ledger.realized_pnl + ledger.commissions == OPENING
    # The deltas the store applies to the account row add up to the same figures.
    assert (net_cost, gross_cost) == (ledger.net_cost, ledger.gross_cost)
    for position in ledger.positions.values():
        # A sub-half-cent fill can cost 0.00, so the basis may be zero, never of the wrong sign.
        assert position.cost_basis * position.qty >= 0
        if position.qty == 0:
            assert position.cost_basis == 0
        assert position.cost_basis == position.cost_basis.quantize(D("0.01"))


@given(fills_strategy)
def test_position_quantity_is_the_signed_sum_of_its_fills(
    fills: list[tuple[str, Side, Decimal, Decimal, Decimal]],
) -> None:
    ledger = Ledger(cash=OPENING)
    expected: dict[str, Decimal] = {}
    for symbol, side, qty, price, _ in fills:
        ledger.apply_fill(symbol, side, qty, price)
        expected[symbol] = expected.get(symbol, D(0)) + (qty if side is BUY else -qty)
    assert {s: p.qty for s, p in ledger.positions.items()} == expected


@given(
    st.decimals(min_value=D(1), max_value=D(1000), places=0),
    st.decimals(min_value=D("0.01"), max_value=D(500), places=2),
    st.decimals(min_value=D("0.01"), max_value=D(500), places=2),
)
def test_round_trip_realizes_exactly_proceeds_minus_cost(
    qty: Decimal, buy: Decimal, sell: Decimal
) -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, qty, buy)
    effect = ledger.apply_fill("AAPL", SELL, qty, sell)
    assert effect.realized_pnl == (qty * sell).quantize(D("0.01")) - (qty * buy).quantize(D("0.01"))


# ---- buying power and reservations ----------------------------------------------


def test_cash_account_buying_power_is_cash_when_only_long() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(100), D(100))
    assert buying_power(ledger.cash, ledger.net_cost, ledger.gross_cost, D(1)) == D(90000)


def test_a_short_uses_buying_power_equal_to_its_size() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", SELL, D(100), D(100))
    assert buying_power(ledger.cash, ledger.net_cost, ledger.gross_cost, D(1)) == D(90000)


def test_margin_multiplier_scales_buying_power() -> None:
    assert buying_power(OPENING, D(0), D(0), D(2)) == D(200000)
    assert buying_power(D(50000), D(50000), D(50000), D(2)) == D(150000)


def test_buying_power_never_goes_negative() -> None:
    assert buying_power(D(-10), D(0), D(0), D(1)) == D(0)


@given(fills_strategy, st.sampled_from([D(1), D(2), D(4)]))
def test_balances_carried_fill_by_fill_give_the_ledgers_buying_power(
    fills: list[tuple[str, Side, Decimal, Decimal, Decimal]], multiplier: Decimal
) -> None:
    """What execution stores with the account row after each fill, from the row's figures."""
    ledger = Ledger(cash=OPENING)
    balances = Balances(OPENING, D(0), D(0), multiplier)
    for symbol, side, qty, price, commission in fills:
        balances = balances.after(ledger.apply_fill(symbol, side, qty, price, commission))
        expected = buying_power(ledger.cash, ledger.net_cost, ledger.gross_cost, multiplier)
        assert balances.buying_power == expected


def test_sell_against_a_long_reserves_nothing_until_it_exceeds_the_shares() -> None:
    def reserve(side: Side, qty: int, already_selling: int) -> Decimal:
        return reservation_for(
            side=side,
            qty=D(qty),
            notional=None,
            price=D(50),
            position_qty=D(100),
            open_qty_same_side=D(already_selling),
        )

    assert reserve(SELL, 60, 0) == 0
    assert reserve(SELL, 60, 60) == D(1000)
    assert reserve(SELL, 130, 0) == D(1500)
    assert reserve(BUY, 10, 0) == D(500)


def test_buy_to_cover_a_short_reserves_nothing() -> None:
    assert (
        reservation_for(
            side=BUY,
            qty=D(10),
            notional=None,
            price=D(50),
            position_qty=D(-10),
            open_qty_same_side=D(0),
        )
        == 0
    )


def test_notional_buy_reserves_its_notional() -> None:
    assert reservation_for(
        side=BUY,
        qty=None,
        notional=D("250.555"),
        price=D(10),
        position_qty=D(0),
        open_qty_same_side=D(0),
    ) == D("250.56")


def test_reservation_price_by_order_type() -> None:
    quote = {"bid": D(99), "ask": D(100)}
    none = {"limit_price": None, "stop_price": None, "trail_price": None, "trail_percent": None}
    assert reservation_price(side=BUY, order_type=OrderType.MARKET, **none, **quote) == D(100)
    assert reservation_price(side=SELL, order_type=OrderType.MARKET, **none, **quote) == D(99)
    limit = {**none, "limit_price": D(95)}
    assert reservation_price(side=BUY, order_type=OrderType.LIMIT, **limit, **quote) == D(95)
    stop = {**none, "stop_price": D(105)}
    assert reservation_price(side=BUY, order_type=OrderType.STOP, **stop, **quote) == D(105)
    trail = {**none, "trail_percent": D(10)}
    assert reservation_price(side=BUY, order_type=OrderType.TRAILING_STOP, **trail, **quote) == D(
        110
    )
    assert (
        reservation_price(side=BUY, order_type=OrderType.MARKET, **none, bid=None, ask=None) is None
    )


def test_a_partial_fill_frees_its_share_of_the_reservation() -> None:
    assert released_reservation(D(1000), D(3), D(10)) == D(300)
    assert released_reservation(D(1000), D(10), D(10)) == D(1000)
    assert released_reservation(D("100.00"), D(1), D(3)) == D("33.33")


# ---- account figures -------------------------------------------------------------


def test_account_figures_mark_positions_to_the_latest_price() -> None:
    ledger = Ledger(cash=OPENING)
    ledger.apply_fill("AAPL", BUY, D(10), D(100))
    ledger.apply_fill("TSLA", SELL, D(5), D(200))
    figures = account_figures(
        cash=ledger.cash,
        positions=ledger.positions.values(),
        marks={"AAPL": D(110), "TSLA": D(190)},
        reserved=D(500),
        realized_pnl=ledger.realized_pnl,
        margin_multiplier=D(1),
        last_equity=OPENING,
    )
    assert figures.cash == D(100000)
    assert figures.long_market_value == D(1100)
    assert figures.short_market_value == D(-950)
    assert figures.equity == D(100150)
    assert figures.unrealized_pnl == D(150)
    assert figures.day_pnl == D(150)
    assert figures.buying_power == D(100000 - 2000 - 500)


def test_position_without_a_mark_is_valued_at_cost() -> None:
    figures = account_figures(
        cash=D(99000),
        positions=[Position("AAPL", D(10), D(1000))],
        marks={},
        reserved=D(0),
        realized_pnl=D(0),
        margin_multiplier=D(1),
        last_equity=OPENING,
    )
    assert (figures.equity, figures.unrealized_pnl) == (OPENING, D(0))
