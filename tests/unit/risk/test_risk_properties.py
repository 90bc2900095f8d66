"""Properties every pre-trade decision keeps, whatever the order and the account look like."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cift.trading.pretrade.checks import check_order
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.quote import Quote
from cift.trading.pretrade.rules import CheckContext, Reason, check_price_collar
from cift.trading.pretrade.snapshot import CheckSnapshot
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import OrderType, Side
from tests.unit.risk.risk_builders import AAPL, NOW_NS, D, limits, snapshot

# Many examples here, without changing the profile every later test module runs under.
MANY = settings(max_examples=300)


def cents(lo: str, hi: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=D(lo), max_value=D(hi), places=2, allow_nan=False, allow_infinity=False
    )


def shares(hi: int = 2_000) -> st.SearchStrategy[Decimal]:
    return st.integers(min_value=-hi, max_value=hi).map(Decimal)


@st.composite
def orders(draw: st.DrawFn) -> OrderToCheck:
    kind = draw(st.sampled_from([OrderType.MARKET, OrderType.LIMIT]))
    use_notional = kind is OrderType.MARKET and draw(st.booleans())
    return OrderToCheck(
        account_id="acct-1",
        symbol="AAPL",
        side=draw(st.sampled_from(Side)),
        order_type=kind,
        qty=None if use_notional else draw(st.integers(1, 1_000).map(Decimal)),
        notional=draw(cents("1", "50000")) if use_notional else None,
        limit_price=draw(cents("92", "108")) if kind is OrderType.LIMIT else None,
    )


@st.composite
def snapshots_of_any_account(draw: st.DrawFn) -> CheckSnapshot:
    bid = draw(cents("90", "110"))
    return snapshot(
        quote=Quote("AAPL", bid, bid + D("0.02"), bid, NOW_NS),
        limits=limits(
            max_position_qty=draw(st.integers(1, 4_000).map(Decimal)),
            max_order_qty=D(10_000),
            max_order_notional=D(10_000_000),
            max_position_notional=D(10_000_000),
            max_gross_exposure=D(100_000_000),
        ),
        buying_power=draw(st.integers(-1_000, 120_000).map(Decimal)),
        position_qty=draw(shares()),
        open_buy_qty=draw(shares().map(abs)),
        open_sell_qty=draw(shares().map(abs)),
        # Mostly active, so plenty of examples get as far as the size rules.
        account_state=draw(
            st.sampled_from(
                [TradingState.ACTIVE] * 4 + [TradingState.REDUCING, TradingState.HALTED]
            )
        ),
    )


@MANY
@given(orders(), snapshots_of_any_account())
def test_approved_order_never_takes_position_past_its_limit(
    order: OrderToCheck, snap: CheckSnapshot
) -> None:
    result = check_order(order, snap)
    if not result.approved:
        return
    ctx = CheckContext.of(order, snap)
    assert ctx.position_after is not None
    grows = abs(ctx.position_after) > abs(ctx.position_before)
    assert not grows or abs(ctx.position_after) <= snap.limits.max_position_qty


@MANY
@given(orders(), snapshots_of_any_account())
def test_approved_order_never_costs_more_than_the_buying_power_available(
    order: OrderToCheck, snap: CheckSnapshot
) -> None:
    result = check_order(order, snap)
    if result.approved:
        assert result.order_cost is not None
        assert result.order_cost <= snap.buying_power


@MANY
@given(orders(), snapshots_of_any_account())
def test_reducing_account_only_ever_approves_orders_that_shrink_without_flipping(
    order: OrderToCheck, snap: CheckSnapshot
) -> None:
    if snap.account_state is not TradingState.REDUCING:
        return
    result = check_order(order, snap)
    if result.approved:
        ctx = CheckContext.of(order, snap)
        assert ctx.position_after is not None
        held = snap.position_qty
        assert held != 0
        assert abs(ctx.position_after) < abs(held)
        assert ctx.position_after == 0 or (ctx.position_after > 0) == (held > 0)


@MANY
@given(orders(), snapshots_of_any_account())
def test_halted_account_approves_nothing(order: OrderToCheck, snap: CheckSnapshot) -> None:
    halted = dataclasses.replace(snap, account_state=TradingState.HALTED)
    assert Reason.ACCOUNT_HALTED in check_order(order, halted).reasons


@MANY
@given(
    reference=cents("1", "1000"),
    distance=cents("0.01", "500"),
    collar_pct=st.integers(1, 50).map(Decimal),
    side=st.sampled_from(Side),
)
def test_collar_is_symmetric_around_the_reference_price(
    reference: Decimal, distance: Decimal, collar_pct: Decimal, side: Side
) -> None:
    quote = Quote("AAPL", reference, reference, reference, NOW_NS)
    snap = snapshot(quote=quote, limits=limits(price_collar_pct=collar_pct))

    def collared(price: Decimal) -> bool:
        order = OrderToCheck(
            "AAPL", side, OrderType.LIMIT, qty=D(1), limit_price=price, account_id="a"
        )
        return bool(check_price_collar(CheckContext.of(order, snap)))

    below = reference - distance
    if below > 0:
        assert collared(reference + distance) == collared(below)
    assert collared(reference + distance) == (distance > reference * collar_pct / 100)


@MANY
@given(orders(), snapshots_of_any_account())
def test_check_is_deterministic_and_lists_reasons_once_per_violation(
    order: OrderToCheck, snap: CheckSnapshot
) -> None:
    first = check_order(order, snap)
    assert first == check_order(order, snap)
    assert first.approved == (first.violations == ())


def test_instrument_fixture_is_fractionable() -> None:
    # The generated notional orders rely on it; a change here would silently
    # turn every notional example into a rejection.
    assert AAPL.fractionable
