"""Risk rules at their edges: stop orders through every rule, zero prices, the exact
boundary of each limit, the sell side of every asymmetric rule and non-flat accounts."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from cift.trading.pretrade.rules import (
    ALL_RULES,
    Reason,
    check_buying_power,
    check_fresh_quote,
    check_gross_exposure,
    check_lot_size,
    check_notional_allowed,
    check_order_size,
    check_position_limits,
    check_price_collar,
    check_prices,
    check_quantity,
    check_rate,
    check_shortable,
    check_tick_grid,
    check_trading_state,
)
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import OrderType, Side
from tests.unit.risk.risk_builders import AAPL, ctx, limits, order, quote, snapshot

D = Decimal
STOP = {"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("100.00")}


def reasons(context) -> set[Reason]:  # type: ignore[no-untyped-def]
    return {v.reason for rule in ALL_RULES for v in rule(context)}


def test_a_stop_order_is_priced_at_its_stop_and_sized_by_every_rule() -> None:
    context = ctx(order(**STOP, qty=D(10)))
    assert (context.price, context.notional) == (D("100.00"), D("1000.00"))
    assert reasons(context) == set()


@pytest.mark.parametrize(
    ("limit_change", "reason"),
    [
        ({"max_order_qty": D(9)}, Reason.MAX_ORDER_QTY),
        ({"max_order_notional": D(999)}, Reason.MAX_ORDER_NOTIONAL),
        ({"max_position_qty": D(9)}, Reason.MAX_POSITION_QTY),
        ({"max_position_notional": D(999)}, Reason.MAX_POSITION_NOTIONAL),
        ({"max_gross_exposure": D(999)}, Reason.MAX_GROSS_EXPOSURE),
    ],
)
def test_a_stop_order_is_held_to_every_size_limit(
    limit_change: dict[str, Decimal], reason: Reason
) -> None:
    context = ctx(order(**STOP, qty=D(10)), snapshot(limits=limits(**limit_change)))
    assert reason in reasons(context)


def test_a_stop_order_is_held_to_buying_power() -> None:
    context = ctx(order(**STOP, qty=D(10)), snapshot(buying_power=D(999)))
    assert [v.reason for v in check_buying_power(context)] == [Reason.INSUFFICIENT_BUYING_POWER]


@pytest.mark.parametrize(
    ("limit_change", "qty"),
    [
        ({"max_order_qty": D(10)}, D(10)),
        ({"max_order_notional": D(1000)}, D(10)),
        ({"max_position_qty": D(10)}, D(10)),
        ({"max_position_notional": D(1000)}, D(10)),
        ({"max_gross_exposure": D(1000)}, D(10)),
    ],
)
def test_an_order_exactly_at_a_limit_passes(limit_change: dict[str, Decimal], qty: Decimal) -> None:
    context = ctx(order(qty=qty), snapshot(limits=limits(**limit_change)))
    assert reasons(context) == set()


def test_an_order_exactly_at_buying_power_passes_and_a_cent_more_does_not() -> None:
    assert check_buying_power(ctx(order(qty=D(10)), snapshot(buying_power=D(1000)))) == []
    short = check_buying_power(ctx(order(qty=D(10)), snapshot(buying_power=D("999.99"))))
    assert [v.reason for v in short] == [Reason.INSUFFICIENT_BUYING_POWER]


@pytest.mark.parametrize(
    "fields",
    [
        {"limit_price": D(0)},
        {**STOP, "stop_price": D(0)},
        {"order_type": OrderType.STOP_LIMIT, "limit_price": D(0), "stop_price": D(100)},
        {"order_type": OrderType.STOP_LIMIT, "limit_price": D(100), "stop_price": D(0)},
        {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D(0)},
        {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D("-0.5")},
        {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_percent": D(0)},
        {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_percent": D(100)},
    ],
)
def test_a_zero_or_negative_price_is_refused(fields: dict[str, object]) -> None:
    context = ctx(order(**fields))
    assert Reason.NON_POSITIVE_PRICE in {v.reason for v in check_prices(context)}


def test_a_zero_priced_limit_cannot_be_sized_so_it_passes_no_size_rule_silently() -> None:
    context = ctx(order(limit_price=D(0)))
    assert context.price is None
    assert Reason.NON_POSITIVE_PRICE in reasons(context)


def test_a_positive_trail_passes() -> None:
    for trail in ({"trail_price": D("0.01")}, {"trail_percent": D("99.9")}):
        fields = {"order_type": OrderType.TRAILING_STOP, "limit_price": None, **trail}
        assert check_prices(ctx(order(**fields))) == []


@pytest.mark.parametrize("qty", [D(1), D("0.5"), D("0.000000001")])
def test_one_share_and_fractional_orders_are_accepted(qty: Decimal) -> None:
    assert reasons(ctx(order(qty=qty))) == set()


def test_gross_exposure_adds_to_what_the_account_already_holds() -> None:
    held = snapshot(gross_exposure=D(9000), limits=limits(max_gross_exposure=D(10_000)))
    assert check_gross_exposure(ctx(order(qty=D(10)), held)) == []
    over = check_gross_exposure(ctx(order(qty=D(11)), held))
    assert [v.reason for v in over] == [Reason.MAX_GROSS_EXPOSURE]
    assert "$10,100.00" in over[0].message


def test_growing_a_short_counts_only_the_added_shares_toward_gross_exposure() -> None:
    short = snapshot(
        position_qty=D(-50), gross_exposure=D(5000), limits=limits(max_gross_exposure=D(6000))
    )
    sell = order(side=Side.SELL, qty=D(10))
    assert check_gross_exposure(ctx(sell, short)) == []
    assert [
        v.reason for v in check_gross_exposure(ctx(order(side=Side.SELL, qty=D(11)), short))
    ] == [Reason.MAX_GROSS_EXPOSURE]


def test_reducing_a_position_over_its_limits_always_passes() -> None:
    over = snapshot(
        position_qty=D(100),
        gross_exposure=D(10_000),  # the 100 shares held, at $100
        limits=limits(max_position_qty=D(10), max_gross_exposure=D(1)),
    )
    sell = ctx(order(side=Side.SELL, qty=D(50)), over)
    assert check_position_limits(sell) == []
    assert check_gross_exposure(sell) == []


def test_a_sell_opening_a_short_needs_no_more_buying_power_than_the_short_part() -> None:
    # Long 4: selling 10 at $100 closes 4 and shorts 6, so $600 of buying power.
    context = ctx(
        order(side=Side.SELL, qty=D(10)), snapshot(position_qty=D(4), buying_power=D(600))
    )
    assert context.order_cost == D(600)
    assert check_buying_power(context) == []
    context = ctx(
        order(side=Side.SELL, qty=D(10)), snapshot(position_qty=D(4), buying_power=D(599))
    )
    assert [v.reason for v in check_buying_power(context)] == [Reason.INSUFFICIENT_BUYING_POWER]


def test_a_sell_from_a_long_costs_nothing() -> None:
    context = ctx(order(side=Side.SELL, qty=D(10)), snapshot(position_qty=D(10), buying_power=D(0)))
    assert context.order_cost == 0


@pytest.mark.parametrize(
    ("position", "open_sells", "refused"),
    [
        (D(0), D(0), True),
        (D(5), D(0), False),
        (D(1), D(0), False),
        (D("0.5"), D(0), False),
        (D(5), D(5), True),
        (D(-1), D(0), True),
    ],
)
def test_a_sell_of_unknown_size_is_a_short_when_nothing_long_is_left(
    position: Decimal, open_sells: Decimal, refused: bool
) -> None:
    # A market sell by notional without a quote cannot be sized.
    sell = order(
        side=Side.SELL, order_type=OrderType.MARKET, qty=None, notional=D(100), limit_price=None
    )
    snap = snapshot(
        quote=None,
        position_qty=position,
        open_sell_qty=open_sells,
        limits=limits(allow_short=False),
    )
    context = ctx(sell, snap)
    assert context.position_after is None
    found = {v.reason for v in check_shortable(context)}
    assert (Reason.SHORT_NOT_ALLOWED in found) is refused


def test_order_size_reports_quantity_and_value_together() -> None:
    context = ctx(
        order(qty=D(11)), snapshot(limits=limits(max_order_qty=D(10), max_order_notional=D(1000)))
    )
    assert [v.reason for v in check_order_size(context)] == [
        Reason.MAX_ORDER_QTY,
        Reason.MAX_ORDER_NOTIONAL,
    ]


def test_a_stop_is_priced_only_by_a_positive_stop() -> None:
    assert ctx(order(**{**STOP, "stop_price": D(0)})).price is None
    assert ctx(order(**{**STOP, "stop_price": D("0.50")})).price == D("0.50")


def test_a_market_order_needs_a_quote_with_a_price_on_its_side() -> None:
    no_ask = snapshot(quote=quote(bid="0", ask="0", last="0"))  # a quote with no price at all
    market_buy = order(order_type=OrderType.MARKET, limit_price=None)
    assert [v.reason for v in check_fresh_quote(ctx(market_buy, no_ask))] == [Reason.NO_FRESH_QUOTE]
    assert "10 s" in check_fresh_quote(ctx(market_buy, snapshot(quote=None)))[0].message


def test_a_quote_exactly_as_old_as_allowed_is_still_fresh() -> None:
    aged = snapshot(quote=quote(age_s=10), limits=limits(max_quote_age_s=D(10)))
    assert ctx(order(order_type=OrderType.MARKET, limit_price=None), aged).fresh_quote is not None


def test_an_order_with_both_qty_and_notional_is_refused_once_not_twice() -> None:
    both = ctx(order(notional=D(100)))
    assert check_notional_allowed(both) == []
    assert [v.reason for v in check_quantity(both)] == [Reason.NOTIONAL_NOT_ALLOWED]


def test_the_collar_ignores_a_zero_price_which_another_rule_refuses() -> None:
    assert check_price_collar(ctx(order(limit_price=D(0)))) == []


def test_prices_and_notionals_below_one_dollar_are_positive() -> None:
    assert check_prices(ctx(order(limit_price=D("0.50")))) == []
    dollars = order(order_type=OrderType.MARKET, limit_price=None, qty=None, notional=D("0.50"))
    assert check_quantity(ctx(dollars)) == []


def test_a_buy_of_unknown_size_never_counts_as_a_short() -> None:
    buy = order(order_type=OrderType.MARKET, limit_price=None, qty=None, notional=D(100))
    snap = snapshot(quote=None, limits=limits(allow_short=False))
    assert check_shortable(ctx(buy, snap)) == []


def test_a_reduce_only_refusal_says_which_side_would_grow() -> None:
    snap = snapshot(account_state=TradingState.REDUCING)
    assert "This sell of AAPL" in check_trading_state(ctx(order(side=Side.SELL), snap))[0].message
    assert "This buy of AAPL" in check_trading_state(ctx(order(), snap))[0].message


@pytest.mark.parametrize(
    ("retry_after_us", "wait"), [(1, "1 ms"), (1_000, "1 ms"), (1_001_000, "1001 ms")]
)
def test_a_rate_refusal_rounds_the_wait_up_to_whole_milliseconds(
    retry_after_us: int, wait: str
) -> None:
    snap = snapshot(rate=RateDecision(allowed=False, retry_after_us=retry_after_us))
    assert f"retry in {wait}" in check_rate(ctx(order(), snap))[0].message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"limit_price": D("100.005")}, "limit_price"),
        (
            {"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("99.999")},
            "stop_price",
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D("0.015")},
            "trail_price",
        ),
    ],
)
def test_an_off_grid_price_is_named_first_in_its_violation(
    changes: dict[str, object], field: str
) -> None:
    # Clients show the sentence beside the field it starts with.
    found = check_tick_grid(ctx(order(**changes)))
    assert [v.reason for v in found] == [Reason.OFF_TICK_GRID]
    assert found[0].message.startswith(f"{field} ")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"limit_price": D("150.00")}, "limit_price"),
        (
            {"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("50.00")},
            "stop_price",
        ),
    ],
)
def test_a_collared_price_is_named_first_in_its_violation(
    changes: dict[str, object], field: str
) -> None:
    found = check_price_collar(ctx(order(**changes)))
    assert [v.reason for v in found] == [Reason.PRICE_COLLAR]
    assert found[0].message.startswith(f"{field} ")


def test_the_collar_holds_for_sub_dollar_prices() -> None:
    penny = snapshot(quote=quote(bid="0.49", ask="0.51", last="0.50"))
    assert check_price_collar(ctx(order(limit_price=D("0.54")), penny)) == []  # 8 % off
    found = check_price_collar(ctx(order(limit_price=D("0.90")), penny))
    assert [v.reason for v in found] == [Reason.PRICE_COLLAR]


def test_lot_size_leaves_notional_and_non_positive_quantities_to_other_rules() -> None:
    whole = snapshot(instrument=dataclasses.replace(AAPL, fractionable=False, qty_increment=D(1)))
    notional = order(order_type=OrderType.MARKET, limit_price=None, qty=None, notional=D(500))
    assert check_lot_size(ctx(notional, whole)) == []
    assert check_lot_size(ctx(order(qty=D("-0.5")), whole)) == []
    assert [v.reason for v in check_lot_size(ctx(order(qty=D("0.5")), whole))] == [Reason.LOT_SIZE]


def test_a_lot_size_refusal_names_the_lot() -> None:
    lots = snapshot(
        instrument=dataclasses.replace(
            AAPL, fractionable=False, lot_size=D(100), qty_increment=D(100)
        )
    )
    found = check_lot_size(ctx(order(qty=D(150)), lots))
    assert [v.message for v in found] == [
        "AAPL trades in lots of 100 shares; 150 is not a multiple of the lot size."
    ]


def test_a_fractional_step_refusal_names_the_step_market_data_gave() -> None:
    steps = snapshot(instrument=dataclasses.replace(AAPL, qty_increment=D("0.001")))
    assert check_lot_size(ctx(order(qty=D("0.002")), steps)) == []
    found = check_lot_size(ctx(order(qty=D("0.0005")), steps))
    assert [v.message for v in found] == [
        "AAPL trades in steps of 0.001 shares; 0.0005 is not a multiple of the step."
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"order_type": OrderType.STOP_LIMIT, "stop_price": None},
            "A stop limit order needs a stop_price.",
        ),
        (
            {"order_type": OrderType.LIMIT, "limit_price": None},
            "A limit order needs a limit_price.",
        ),
        (
            {"order_type": OrderType.MARKET, "stop_price": D(1), "limit_price": None},
            "A market order takes no stop_price; remove it.",
        ),
    ],
)
def test_a_price_refusal_names_the_order_type_in_words(
    changes: dict[str, object], message: str
) -> None:
    assert [v.message for v in check_prices(ctx(order(**changes)))] == [message]


@pytest.mark.parametrize("qty", [D(1), D("0.5")])
def test_one_share_and_fractional_orders_are_sized_by_every_rule(qty: Decimal) -> None:
    # $100 limits everywhere: one share at $300 (or half of one) is over each of them.
    small = limits(
        max_order_qty=qty / 2,
        max_order_notional=D(100),
        max_position_qty=qty / 2,
        max_position_notional=D(100),
        max_gross_exposure=D(100),
    )
    snap = snapshot(
        limits=small, buying_power=D(100), quote=quote(bid="299.99", ask="300.01", last="300")
    )
    assert reasons(ctx(order(qty=qty, limit_price=D(300)), snap)) == {
        Reason.MAX_ORDER_QTY,
        Reason.MAX_ORDER_NOTIONAL,
        Reason.MAX_POSITION_QTY,
        Reason.MAX_POSITION_NOTIONAL,
        Reason.MAX_GROSS_EXPOSURE,
        Reason.INSUFFICIENT_BUYING_POWER,
    }


def test_a_notional_order_of_a_dollar_or_less_still_needs_the_buying_power() -> None:
    dollar = order(order_type=OrderType.MARKET, limit_price=None, qty=None, notional=D(1))
    assert reasons(ctx(dollar, snapshot(buying_power=D(1)))) == set()
    assert reasons(ctx(dollar, snapshot(buying_power=D("0.99")))) == {
        Reason.INSUFFICIENT_BUYING_POWER
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"qty": D(0)},
        {"qty": None, "notional": D(0), "order_type": OrderType.MARKET, "limit_price": None},
    ],
)
def test_an_order_of_nothing_is_refused_for_that_alone_by_every_rule(
    changes: dict[str, object],
) -> None:
    assert reasons(ctx(order(**changes))) == {Reason.NON_POSITIVE_QUANTITY}


MARKET, LIMIT = OrderType.MARKET, OrderType.LIMIT
STOP_T, STOP_LIMIT, TRAILING = OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        # Each order type's price terms, wrong in one way at a time.
        ({"order_type": MARKET, "limit_price": D(100)}, {Reason.PRICE_NOT_ALLOWED}),
        (
            {"order_type": MARKET, "limit_price": None, "stop_price": D(100)},
            {Reason.PRICE_NOT_ALLOWED},
        ),
        (
            {"order_type": MARKET, "limit_price": None, "trail_percent": D(5)},
            {Reason.PRICE_NOT_ALLOWED},
        ),
        (
            {"order_type": MARKET, "limit_price": None, "trail_price": D(1)},
            {Reason.PRICE_NOT_ALLOWED},
        ),
        ({"order_type": LIMIT, "limit_price": None}, {Reason.MISSING_PRICE}),
        ({"order_type": LIMIT, "limit_price": D(0)}, {Reason.NON_POSITIVE_PRICE}),
        ({"order_type": LIMIT, "stop_price": D(99)}, {Reason.PRICE_NOT_ALLOWED}),
        ({"order_type": LIMIT, "trail_percent": D(5)}, {Reason.PRICE_NOT_ALLOWED}),
        ({"order_type": STOP_T, "limit_price": None}, {Reason.MISSING_PRICE}),
        (
            {"order_type": STOP_T, "limit_price": None, "stop_price": D(0)},
            {Reason.NON_POSITIVE_PRICE},
        ),
        (
            {"order_type": STOP_T, "limit_price": None, "stop_price": D(-1)},
            {Reason.NON_POSITIVE_PRICE},
        ),
        ({"order_type": STOP_T, "stop_price": D(99)}, {Reason.PRICE_NOT_ALLOWED}),
        (
            {"order_type": STOP_T, "limit_price": None, "stop_price": D(99), "trail_percent": D(5)},
            {Reason.PRICE_NOT_ALLOWED},
        ),
        (
            {"order_type": STOP_LIMIT, "limit_price": None, "stop_price": D(99)},
            {Reason.MISSING_PRICE},
        ),
        ({"order_type": STOP_LIMIT, "stop_price": None}, {Reason.MISSING_PRICE}),
        (
            {"order_type": TRAILING, "limit_price": None, "stop_price": D(99)},
            {Reason.PRICE_NOT_ALLOWED, Reason.MISSING_PRICE},
        ),
        ({"order_type": TRAILING, "limit_price": None}, {Reason.MISSING_PRICE}),
    ],
)
def test_an_order_with_the_wrong_price_terms_for_its_type_is_refused(
    terms: dict[str, object], expected: set[Reason]
) -> None:
    assert {v.reason for v in check_prices(ctx(order(**terms)))} == expected


@pytest.mark.parametrize(
    "terms",
    [
        {"order_type": MARKET, "limit_price": None},
        {"order_type": LIMIT, "limit_price": D("0.50")},
        {"order_type": STOP_T, "limit_price": None, "stop_price": D("0.50")},
        {"order_type": STOP_LIMIT, "limit_price": D("0.75"), "stop_price": D("0.80")},
        {"order_type": STOP_LIMIT, "limit_price": D(1), "stop_price": D(1)},
        {"order_type": TRAILING, "limit_price": None, "trail_price": D("0.25")},
        {"order_type": TRAILING, "limit_price": None, "trail_percent": D("0.5")},
    ],
)
def test_every_positive_price_is_accepted_however_small(terms: dict[str, object]) -> None:
    assert check_prices(ctx(order(**terms))) == []


@pytest.mark.parametrize(
    ("limit_s", "age_ns", "fresh"),
    [
        (D("0.0000000005"), 1, False),  # a limit below a nanosecond: one nanosecond is too old
        (D("0.000000001"), 1, True),
        (D("0.000000001"), 2, False),
        (D("0.0000000005"), 0, True),  # a quote from this very instant is never stale
    ],
)
def test_a_quote_older_than_the_limit_by_any_amount_is_not_used(
    limit_s: Decimal, age_ns: int, fresh: bool
) -> None:
    q = dataclasses.replace(quote(), ts_ns=snapshot().now_ns - age_ns)
    context = ctx(order(), snapshot(quote=q, limits=limits(max_quote_age_s=limit_s)))
    assert (context.fresh_quote is not None) == fresh


@pytest.mark.parametrize(
    "size",
    [
        {"qty": D(0)},
        {"qty": D(-5)},
        {"qty": None, "notional": D(0)},
        {"qty": None, "notional": D(-100)},
    ],
)
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_an_order_of_no_positive_size_is_not_sized_and_shows_no_cost(
    size: dict[str, Decimal | None], side: Side
) -> None:
    # Refused for its size; it reports no notional, no position after and no cost
    # rather than figures computed from a size it does not have.
    context = ctx(order(order_type=OrderType.MARKET, limit_price=None, side=side, **size))
    assert (context.qty, context.notional, context.position_after) == (None, None, None)
    assert context.order_cost is None
    assert Reason.NON_POSITIVE_QUANTITY in reasons(context)
