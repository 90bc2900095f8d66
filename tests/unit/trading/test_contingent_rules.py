"""The leg rules of bracket, OCO and OTO groups on their own, and the shapes at their edges.

The engine-level tests (tests/unit/execution/test_execution_contingent.py) reach these
through ticks; here each rule of `ContingentOrders` is stated directly: which orders are
exits, what a fill or a close sets off, what a restart restores and what a replace hands
on, plus the order-class checks on the buy side, at equal prices and for every id.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.runtime.errors import InvalidArgument
from cift.trading.contingent import CancelLeg, ContingentOrders, ReleaseLeg
from cift.trading.order_classes import (
    ClassedRequest,
    StopLoss,
    TakeProfit,
    accept_group,
    new_group,
    plan_group,
)
from cift.trading.orders import Order, OrderClass, OrderRequest, OrderStatus
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)


def bracket_group() -> ContingentOrders:
    legs = ContingentOrders()
    legs.register("entry", OrderClass.BRACKET, ["tp", "sl"])
    return legs


def cancel_ids(actions: list[CancelLeg | ReleaseLeg]) -> list[str]:
    return [a.order_id for a in actions if isinstance(a, CancelLeg)]


# ---- ContingentOrders ------------------------------------------------------------


def test_each_order_of_an_oco_is_an_exit_that_cancels_the_other() -> None:
    legs = ContingentOrders()
    legs.register("tp", OrderClass.OCO, ["sl"])
    assert cancel_ids(legs.on_fill("tp", D(1), completes=False)) == ["sl"]
    other = ContingentOrders()
    other.register("tp", OrderClass.OCO, ["sl"])
    assert cancel_ids(other.on_fill("sl", D(1), completes=False)) == ["tp"]
    assert other.max_exit_qty("sl", D(5)) is None  # no entry bounds an OCO's exits


def test_an_entry_fill_releases_its_open_exits_and_a_completing_one_leaves_the_group() -> None:
    legs = bracket_group()
    assert legs.on_fill("entry", D(4), completes=False) == [
        ReleaseLeg("tp", D(4)),
        ReleaseLeg("sl", D(4)),
    ]
    assert "entry" in legs
    assert legs.on_fill("entry", D(6), completes=True) == [
        ReleaseLeg("tp", D(6)),
        ReleaseLeg("sl", D(6)),
    ]
    assert "entry" not in legs and "tp" in legs
    # The entry is done, so an exit's fill cancels only the other exit.
    assert legs.on_fill("tp", D(10), completes=True) == [
        CancelLeg("sl", "canceled because its bracket exit tp filled")
    ]
    assert "tp" not in legs


def test_an_exit_fill_cancels_the_other_exit_and_the_entrys_rest_once() -> None:
    legs = bracket_group()
    legs.on_fill("entry", D(4), completes=False)
    assert cancel_ids(legs.on_fill("sl", D(1), completes=False)) == ["tp", "entry"]
    assert legs.on_fill("sl", D(3), completes=True) == []  # already exiting
    assert legs.on_fill("entry", D(1), completes=False) == []  # nothing more to release


def test_a_restored_group_keeps_what_was_open_and_whether_it_was_exiting() -> None:
    legs = ContingentOrders()
    legs.register("entry", OrderClass.BRACKET, ["tp", "sl"], open_ids={"tp", "sl", "gone"})
    assert ("entry" in legs, "tp" in legs, "sl" in legs, "gone" in legs) == (
        False,
        True,
        True,
        False,
    )
    group = legs.group_of("tp")
    assert group is not None and group.open_ids == {"tp", "sl"}
    exiting = ContingentOrders()
    exiting.register("entry", OrderClass.BRACKET, ["tp", "sl"], exited=True)
    assert exiting.on_fill("tp", D(1), completes=False) == []
    assert exiting.on_fill("entry", D(1), completes=False) == []


def test_a_parent_leaving_unfilled_cancels_only_its_legs_still_open() -> None:
    legs = bracket_group()
    assert legs.on_close("sl", OrderStatus.CANCELED, D(0)) == []  # an exit alone
    assert legs.on_close("entry", OrderStatus.CANCELED, D(0)) == [
        CancelLeg("tp", "canceled with its parent order entry")
    ]
    assert "entry" not in legs and "sl" not in legs


@pytest.mark.parametrize(("filled", "cancels"), [(D(0), ["tp", "sl"]), (D(1), [])])
def test_an_entry_expiring_after_any_fill_keeps_its_exits(
    filled: Decimal, cancels: list[str]
) -> None:
    legs = bracket_group()
    assert cancel_ids(legs.on_close("entry", OrderStatus.EXPIRED, filled)) == cancels


def test_a_replaced_order_hands_its_place_in_the_group_to_its_successor() -> None:
    legs = bracket_group()
    legs.replaced("not-grouped", "x")  # nothing to hand on
    legs.replaced("entry", "entry-2")
    legs.replaced("tp", "tp-2")
    assert ("entry" in legs, "tp" in legs, "entry-2" in legs, "tp-2" in legs) == (
        False,
        False,
        True,
        True,
    )
    group = legs.group_of("entry-2")
    assert group is not None
    assert (group.parent_id, group.entry_id, group.exit_ids) == (
        "entry-2",
        "entry-2",
        ["tp-2", "sl"],
    )
    assert group.open_ids == {"entry-2", "tp-2", "sl"}
    assert legs.max_exit_qty("tp-2", D(3)) == D(3)
    assert legs.on_fill("entry-2", D(2), completes=False) == [
        ReleaseLeg("tp-2", D(2)),
        ReleaseLeg("sl", D(2)),
    ]
    assert cancel_ids(legs.on_fill("tp-2", D(1), completes=False)) == ["sl", "entry-2"]


def test_a_replaced_exit_keeps_the_parent_and_the_entry() -> None:
    legs = bracket_group()
    legs.replaced("sl", "sl-2")
    group = legs.group_of("entry")
    assert group is not None
    assert (group.parent_id, group.entry_id, group.exit_ids) == ("entry", "entry", ["tp", "sl-2"])
    assert cancel_ids(legs.on_close("entry", OrderStatus.CANCELED, D(0))) == ["tp", "sl-2"]


def test_an_order_outside_every_group_has_no_exit_bound() -> None:
    assert bracket_group().max_exit_qty("stranger", D(5)) is None
    assert bracket_group().max_exit_qty("entry", D(5)) is None  # the entry is not an exit


# ---- order classes ---------------------------------------------------------------


def limit_entry(side: Side, price: str) -> OrderRequest:
    return OrderRequest(
        "AAPL", side, OrderType.LIMIT, TimeInForce.GTC, qty=D(10), limit_price=D(price)
    )


def test_an_oco_needs_both_exits() -> None:
    for take, stop in [(TakeProfit(D(110)), None), (None, StopLoss(stop_price=D(90)))]:
        request = ClassedRequest(limit_entry(Side.SELL, "110"), OrderClass.OCO, take, stop)
        with pytest.raises(InvalidArgument, match="needs both take_profit and stop_loss"):
            plan_group(request, AAPL)


def test_an_oco_whose_limit_is_its_take_profit_is_accepted() -> None:
    request = ClassedRequest(
        limit_entry(Side.SELL, "110"),
        OrderClass.OCO,
        TakeProfit(D(110)),
        StopLoss(stop_price=D(90)),
    )
    plan = plan_group(request, AAPL)
    assert (plan.parent.limit_price, plan.legs[0].stop_price) == (D(110), D(90))


def test_a_buy_oco_covering_a_short_takes_profit_below_its_stop() -> None:
    def buy_oco(take: str, stop: str) -> ClassedRequest:
        return ClassedRequest(
            limit_entry(Side.BUY, take),
            OrderClass.OCO,
            TakeProfit(D(take)),
            StopLoss(stop_price=D(stop)),
        )

    plan = plan_group(buy_oco("90", "110"), AAPL)
    assert (plan.parent.side, plan.legs[0].side) == (Side.BUY, Side.BUY)
    with pytest.raises(InvalidArgument, match="must be below"):
        plan_group(buy_oco("110", "90"), AAPL)


@pytest.mark.parametrize(
    ("entry_side", "limit", "accepted"),
    [
        # A buy entry at 100: its sell stop-loss at 95 may limit at 95 or below.
        (Side.BUY, "95", True),
        (Side.BUY, "94", True),
        (Side.BUY, "96", False),
        # A sell entry at 100: its buy stop-loss at 105 may limit at 105 or above.
        (Side.SELL, "105", True),
        (Side.SELL, "106", True),
        (Side.SELL, "104", False),
    ],
)
def test_a_stop_limit_stop_loss_may_limit_at_its_stop_or_beyond_it(
    entry_side: Side, limit: str, accepted: bool
) -> None:
    stop, take = ("95", "110") if entry_side is Side.BUY else ("105", "90")
    request = ClassedRequest(
        limit_entry(entry_side, "100"),
        OrderClass.BRACKET,
        TakeProfit(D(take)),
        StopLoss(stop_price=D(stop), limit_price=D(limit)),
    )
    if accepted:
        assert plan_group(request, AAPL).legs[1].limit_price == D(limit)
    else:
        where = "at or below" if entry_side is Side.BUY else "at or above"
        with pytest.raises(
            InvalidArgument, match=rf"stop_loss\.limit_price {limit} must be {where}"
        ):
            plan_group(request, AAPL)


def test_a_groups_orders_carry_the_account_and_time_and_take_status_together() -> None:
    request = ClassedRequest(
        limit_entry(Side.BUY, "100"),
        OrderClass.BRACKET,
        TakeProfit(D(110)),
        StopLoss(stop_price=D(90)),
    )
    plan = plan_group(request, AAPL)
    parent, legs = new_group(
        plan,
        AAPL,
        order_ids=["p", "l1", "l2"],
        leg_client_ids=["c1", "c2"],
        account_id="acct-9",
        now_ns=77,
    )
    for order in (parent, *legs):
        assert (order.account_id, order.created_ns, order.order_class) == (
            "acct-9",
            77,
            OrderClass.BRACKET,
        )
    assert [(leg.order_id, leg.client_order_id, leg.parent_id) for leg in legs] == [
        ("l1", "c1", "p"),
        ("l2", "c2", "p"),
    ]
    accept_group(parent, legs, 78)
    assert [(o.status, o.updated_ns) for o in (parent, *legs)] == [
        (OrderStatus.ACCEPTED, 78),
        (OrderStatus.HELD, 78),
        (OrderStatus.HELD, 78),
    ]
    with pytest.raises(ValueError):  # one client id per leg, no fewer
        new_group(
            plan, AAPL, order_ids=["p", "l1", "l2"], leg_client_ids=["c1"], account_id="a", now_ns=1
        )


@pytest.mark.parametrize(
    ("market_now_ns", "accepted"),
    [(None, True), (150, False), (50, True)],  # expire_at 120, host now 100
)
def test_a_gtd_simple_orders_expiry_is_judged_by_the_market_clock_when_given(
    market_now_ns: int | None, accepted: bool
) -> None:
    entry = OrderRequest(
        "AAPL",
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.GTD,
        qty=D(10),
        limit_price=D(100),
        expire_ns=120,
    )
    plan = plan_group(ClassedRequest(entry), AAPL)

    def build() -> Order:
        parent, _ = new_group(
            plan,
            AAPL,
            order_ids=["p"],
            leg_client_ids=[],
            account_id="a",
            now_ns=100,
            market_now_ns=market_now_ns,
        )
        return parent

    if accepted:
        assert build().expire_ns == 120
    else:
        with pytest.raises(InvalidArgument, match="future of the market clock"):
            build()


def test_an_ocos_leg_works_from_acceptance_with_its_time() -> None:
    request = ClassedRequest(
        limit_entry(Side.SELL, "110"),
        OrderClass.OCO,
        TakeProfit(D(110)),
        StopLoss(stop_price=D(90)),
    )
    parent, legs = new_group(
        plan_group(request, AAPL),
        AAPL,
        order_ids=["p", "l"],
        leg_client_ids=["c"],
        account_id="a",
        now_ns=5,
    )
    accept_group(parent, legs, 6)
    assert [(o.status, o.updated_ns) for o in (parent, *legs)] == [
        (OrderStatus.ACCEPTED, 6),
        (OrderStatus.ACCEPTED, 6),
    ]


def test_a_simple_order_takes_no_exit_of_either_kind() -> None:
    simple = limit_entry(Side.BUY, "100")
    assert plan_group(ClassedRequest(simple), AAPL).order_class is OrderClass.SIMPLE
    assert plan_group(ClassedRequest(simple), AAPL).legs == ()
    for take, stop in [(TakeProfit(D(110)), None), (None, StopLoss(stop_price=D(90)))]:
        with pytest.raises(InvalidArgument, match="set order_class"):
            plan_group(ClassedRequest(simple, OrderClass.SIMPLE, take, stop), AAPL)


@pytest.mark.parametrize(
    ("entry_side", "take", "stop", "rule"),
    [
        (Side.BUY, "100", "95", "take_profit.limit_price 100 must be above the entry price 100"),
        (Side.BUY, "110", "100", "stop_loss.stop_price 100 must be below the entry price 100"),
        (Side.SELL, "100", "105", "take_profit.limit_price 100 must be below the entry price 100"),
        (Side.SELL, "90", "100", "stop_loss.stop_price 100 must be above the entry price 100"),
    ],
)
def test_an_exit_exactly_at_the_entry_price_is_refused(
    entry_side: Side, take: str, stop: str, rule: str
) -> None:
    request = ClassedRequest(
        limit_entry(entry_side, "100"),
        OrderClass.BRACKET,
        TakeProfit(D(take)),
        StopLoss(stop_price=D(stop)),
    )
    with pytest.raises(InvalidArgument) as caught:
        plan_group(request, AAPL)
    assert rule in caught.value.message


@pytest.mark.parametrize("entry_side", [Side.BUY, Side.SELL])
def test_a_take_profit_exactly_at_the_stop_is_refused(entry_side: Side) -> None:
    market = OrderRequest("AAPL", entry_side, OrderType.MARKET, TimeInForce.DAY, qty=D(10))
    request = ClassedRequest(
        market, OrderClass.BRACKET, TakeProfit(D(100)), StopLoss(stop_price=D(100))
    )
    with pytest.raises(InvalidArgument, match=r"must be (above|below) stop_loss"):
        plan_group(request, AAPL)  # no market price: only the exits against each other
