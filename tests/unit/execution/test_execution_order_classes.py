"""Bracket, OCO and OTO requests: which shapes are accepted, and the rule each refusal names."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.runtime.errors import InvalidArgument
from cift.trading.order_classes import (
    ClassedRequest,
    StopLoss,
    TakeProfit,
    accept_group,
    new_group,
    plan_group,
)
from cift.trading.orders import OrderClass, OrderRequest, OrderStatus, new_order
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)


def entry(
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    **fields: object,
) -> OrderRequest:
    base: dict[str, object] = {"qty": D(10)}
    if order_type is OrderType.LIMIT:
        base["limit_price"] = D(100)
    base.update(fields)
    return OrderRequest(
        symbol="AAPL",
        side=side,
        order_type=order_type,
        time_in_force=tif,
        **base,  # type: ignore[arg-type]
    )


def bracket(
    order: OrderRequest | None = None,
    take: str | None = "110",
    stop: StopLoss | None = None,
    order_class: OrderClass = OrderClass.BRACKET,
) -> ClassedRequest:
    return ClassedRequest(
        order or entry(),
        order_class,
        TakeProfit(D(take)) if take is not None else None,
        stop if stop is not None else StopLoss(stop_price=D(95)),
    )


def refusal(request: ClassedRequest, market_price: str | None = None) -> str:
    with pytest.raises(InvalidArgument) as refused:
        plan_group(request, AAPL, market_price=None if market_price is None else D(market_price))
    return refused.value.message


def test_buy_bracket_plans_a_sell_take_profit_and_a_sell_stop_of_the_same_size() -> None:
    plan = plan_group(bracket(), AAPL)
    take, stop = plan.legs
    assert (take.side, take.order_type, take.limit_price, take.qty) == (
        Side.SELL,
        OrderType.LIMIT,
        D(110),
        D(10),
    )
    assert (stop.side, stop.order_type, stop.stop_price) == (Side.SELL, OrderType.STOP, D(95))
    assert take.time_in_force is stop.time_in_force is TimeInForce.GTC


def test_take_profit_below_a_buy_entry_is_refused_naming_the_rule() -> None:
    message = refusal(bracket(take="99"))
    assert "bracket rule" in message
    assert "take_profit.limit_price 99 must be above the entry price 100" in message


def test_stop_above_a_buy_entry_is_refused_naming_the_rule() -> None:
    message = refusal(bracket(stop=StopLoss(stop_price=D(101))))
    assert "stop_loss.stop_price 101 must be below the entry price 100" in message


def test_sell_bracket_mirrors_the_rule() -> None:
    sell = entry(Side.SELL)
    plan = plan_group(bracket(sell, take="90", stop=StopLoss(stop_price=D(105))), AAPL)
    assert [leg.side for leg in plan.legs] == [Side.BUY, Side.BUY]
    assert "must be below the entry price" in refusal(bracket(sell, take="101"))
    assert "must be above the entry price" in refusal(
        bracket(sell, take="90", stop=StopLoss(stop_price=D(99)))
    )


def test_market_entry_is_checked_against_the_market_price_when_known() -> None:
    market = entry(order_type=OrderType.MARKET)
    assert plan_group(bracket(market), AAPL, market_price=D(100)).legs
    assert "above the entry price 111" in refusal(bracket(market), market_price="111")
    # Without a price the exits are still checked against each other.
    assert "must be above stop_loss.stop_price" in refusal(
        bracket(market, take="94"), market_price=None
    )


def test_stop_limit_and_trailing_stop_losses() -> None:
    stop_limit = plan_group(bracket(stop=StopLoss(stop_price=D(95), limit_price=D(94))), AAPL)
    assert stop_limit.legs[1].order_type is OrderType.STOP_LIMIT
    trailing = plan_group(bracket(stop=StopLoss(trail_percent=D(2))), AAPL)
    assert trailing.legs[1].order_type is OrderType.TRAILING_STOP
    assert "at or below stop_price 95" in refusal(
        bracket(stop=StopLoss(stop_price=D(95), limit_price=D(96)))
    )
    assert "trail_price or trail_percent alone" in refusal(
        bracket(stop=StopLoss(stop_price=D(95), trail_price=D(1)))
    )
    assert "stop_loss needs stop_price" in refusal(bracket(stop=StopLoss()))


def test_leg_prices_are_checked_like_any_order_and_say_which_leg() -> None:
    assert refusal(bracket(take="110.005")).startswith("take_profit: limit_price 110.005")
    assert refusal(bracket(stop=StopLoss(stop_price=D(-1)))).startswith("stop_loss:")


def test_a_bracket_needs_both_exits_and_an_oto_exactly_one() -> None:
    assert "needs both" in refusal(bracket(take=None))
    both = bracket(order_class=OrderClass.OTO)
    assert "exactly one" in refusal(both)
    only_stop = ClassedRequest(entry(), OrderClass.OTO, None, StopLoss(stop_price=D(95)))
    assert [leg.order_type for leg in plan_group(only_stop, AAPL).legs] == [OrderType.STOP]


def test_group_terms_time_in_force_entry_type_notional_and_extended_hours() -> None:
    assert "day or gtc" in refusal(bracket(entry(tif=TimeInForce.IOC)))
    assert "market or limit" in refusal(bracket(entry(order_type=OrderType.STOP, stop_price=D(99))))
    notional = entry(order_type=OrderType.MARKET, tif=TimeInForce.DAY, qty=None, notional=D(500))
    assert "not notional" in refusal(bracket(notional))
    assert "extended hours" in refusal(bracket(entry(tif=TimeInForce.DAY, extended_hours=True)))


def test_simple_orders_take_no_exits() -> None:
    assert "set order_class" in refusal(bracket(order_class=OrderClass.SIMPLE))
    plan = plan_group(ClassedRequest(entry()), AAPL)
    assert plan.legs == () and plan.parent == entry()


def test_oco_parent_is_the_take_profit_and_its_leg_the_stop_on_the_same_side() -> None:
    request = ClassedRequest(
        entry(Side.SELL, limit_price=None, client_order_id="mine"),
        OrderClass.OCO,
        TakeProfit(D(110)),
        StopLoss(stop_price=D(95)),
    )
    plan = plan_group(request, AAPL)
    assert (plan.parent.side, plan.parent.limit_price, plan.parent.client_order_id) == (
        Side.SELL,
        D(110),
        "mine",
    )
    assert (plan.legs[0].side, plan.legs[0].stop_price) == (Side.SELL, D(95))


def test_oco_rules() -> None:
    market = ClassedRequest(
        entry(Side.SELL, OrderType.MARKET),
        OrderClass.OCO,
        TakeProfit(D(110)),
        StopLoss(stop_price=D(95)),
    )
    assert "type limit" in refusal(market)
    inverted = ClassedRequest(
        entry(Side.SELL, limit_price=None),
        OrderClass.OCO,
        TakeProfit(D(90)),
        StopLoss(stop_price=D(95)),
    )
    assert "oco rule" in refusal(inverted) and "closing a long position" in refusal(inverted)
    mismatched = ClassedRequest(
        entry(Side.SELL, limit_price=D(108)),
        OrderClass.OCO,
        TakeProfit(D(110)),
        StopLoss(stop_price=D(95)),
    )
    assert "make them equal" in refusal(mismatched)


def test_new_group_links_legs_and_accept_holds_bracket_exits_but_works_oco_legs() -> None:
    plan = plan_group(bracket(), AAPL)
    parent, legs = new_group(
        plan,
        AAPL,
        order_ids=["p", "tp", "sl"],
        leg_client_ids=["c1", "c2"],
        account_id="acct",
        now_ns=1,
    )
    accept_group(parent, legs, 2)
    assert parent.status is OrderStatus.ACCEPTED and parent.order_class is OrderClass.BRACKET
    assert [(leg.parent_id, leg.status, leg.client_order_id) for leg in legs] == [
        ("p", OrderStatus.HELD, "c1"),
        ("p", OrderStatus.HELD, "c2"),
    ]
    oco = plan_group(
        ClassedRequest(
            entry(Side.SELL, limit_price=None),
            OrderClass.OCO,
            TakeProfit(D(110)),
            StopLoss(stop_price=D(95)),
        ),
        AAPL,
    )
    parent, legs = new_group(
        oco, AAPL, order_ids=["p", "sl"], leg_client_ids=["c"], account_id="a", now_ns=1
    )
    accept_group(parent, legs, 2)
    assert legs[0].status is OrderStatus.ACCEPTED


def test_session_terms_of_simple_orders() -> None:
    def build(**fields: object) -> None:
        new_order(entry(**fields), AAPL, order_id="o", account_id="a", now_ns=1_000)  # type: ignore[arg-type]

    build(tif=TimeInForce.DAY, extended_hours=True)
    build(tif=TimeInForce.GTD, expire_ns=2_000)
    build(tif=TimeInForce.OPG)
    with pytest.raises(InvalidArgument, match="limit orders with time_in_force day"):
        build(tif=TimeInForce.GTC, extended_hours=True)
    with pytest.raises(InvalidArgument, match="needs expire_at"):
        build(tif=TimeInForce.GTD)
    with pytest.raises(InvalidArgument, match="gtd orders only"):
        build(tif=TimeInForce.DAY, expire_ns=2_000)
    with pytest.raises(InvalidArgument, match="in the future"):
        build(tif=TimeInForce.GTD, expire_ns=1_000)
    with pytest.raises(InvalidArgument, match="auction"):
        build(order_type=OrderType.STOP, stop_price=D(99), limit_price=None, tif=TimeInForce.CLS)
