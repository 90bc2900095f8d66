"""The order's lifecycle and session terms at their edges: each refused move named, zero and
exact-limit values on both sides, and what a replace carries besides prices and size."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from cift.trading.orders import (
    Order,
    OrderClass,
    OrderRequest,
    OrderStatus,
    ReplaceRequest,
    build_replacement,
    new_order,
    resolve_resubmission,
)
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
NOW = 1_000


def a_request(**fields: object) -> OrderRequest:
    base: dict[str, object] = {
        "symbol": "AAPL",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.DAY,
        "qty": D(10),
        "limit_price": D(100),
    }
    base.update(fields)
    return OrderRequest(**base)  # type: ignore[arg-type]


def an_order(**fields: object) -> Order:
    return new_order(a_request(**fields), AAPL, order_id="o1", account_id="a1", now_ns=NOW)


def live(**fields: object) -> Order:
    order = an_order(**fields)
    order.transition(OrderStatus.ACCEPTED, NOW + 1)
    return order


@pytest.mark.parametrize(
    ("to", "verb"),
    [
        (OrderStatus.NEW, "reopened"),
        (OrderStatus.ACCEPTED, "accepted"),
        (OrderStatus.HELD, "held"),
        (OrderStatus.PARTIALLY_FILLED, "filled"),
        (OrderStatus.FILLED, "filled"),
        (OrderStatus.CANCELED, "canceled"),
        (OrderStatus.EXPIRED, "expired"),
        (OrderStatus.REJECTED, "rejected"),
        (OrderStatus.REPLACED, "replaced"),
    ],
)
def test_a_refused_move_names_the_status_and_what_was_attempted(to: OrderStatus, verb: str) -> None:
    order = live()
    order.transition(OrderStatus.CANCELED, NOW + 2, "canceled by the trader")
    with pytest.raises(FailedPrecondition) as caught:
        order.transition(to, NOW + 3, "ignored")
    assert caught.value.message == f"Order o1 is canceled, so it cannot be {verb}."
    assert (order.status, order.updated_ns, order.reason) == (
        OrderStatus.CANCELED,
        NOW + 2,
        "canceled by the trader",
    )


def test_a_new_order_may_reserve_nothing_but_never_less() -> None:
    sell = an_order(side=Side.SELL)
    sell.reserve(D(0))  # a sell against a long holds no buying power
    assert sell.reserved == D(0)
    with pytest.raises(InvalidArgument, match="cannot be negative"):
        sell.reserve(D("-0.01"))
    assert sell.reserved == D(0)


def test_a_stored_copy_never_holds_a_negative_reservation() -> None:
    order = an_order()
    order.reserve(D("100.00"))
    order.accept(NOW + 1)
    order.apply_fill(OrderStatus.PARTIALLY_FILLED, D(4), D(400), 1, NOW + 2, released=D(150))
    assert order.reserved == D(0)  # released more than it held: nothing is left, not -50
    order.apply_fill(OrderStatus.PARTIALLY_FILLED, D(4), D(400), 2, NOW + 3, released=D(0))
    assert (order.fill_count, order.filled_qty) == (2, D(4))
    with pytest.raises(FailedPrecondition, match="already counts 2 fills"):
        order.apply_fill(OrderStatus.PARTIALLY_FILLED, D(3), D(300), 3, NOW + 4, released=D(0))


@pytest.mark.parametrize("qty", [D(0), D(-1)])
def test_a_working_leg_grows_only_by_a_positive_quantity(qty: Decimal) -> None:
    leg = live()
    with pytest.raises(FailedPrecondition, match="cannot grow"):
        leg.grow(qty)
    leg.grow(D(1))
    assert leg.qty == D(11)


def test_a_notional_order_cannot_grow_by_shares() -> None:
    frac = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D("0.01"), fractionable=True)
    order = new_order(
        a_request(order_type=OrderType.MARKET, limit_price=None, qty=None, notional=D(50)),
        frac,
        order_id="n1",
        account_id="a1",
        now_ns=NOW,
    )
    with pytest.raises(FailedPrecondition, match="cannot grow"):
        order.grow(D(1))


def test_the_average_price_is_exact_to_six_decimals() -> None:
    order = live()
    assert order.filled_avg_price is None
    for price in ("100", "100", "100.01"):
        order.record_fill(D(1), D(price), NOW + 2)
    assert order.filled_avg_price == D("100.003333")  # 300.01 / 3


def test_a_trail_of_just_under_100_percent_is_accepted() -> None:
    order = an_order(order_type=OrderType.TRAILING_STOP, limit_price=None, trail_percent=D("99.99"))
    assert order.trail_percent == D("99.99")


@pytest.mark.parametrize(
    "fields",
    [
        {"time_in_force": TimeInForce.GTD, "expire_ns": NOW + 1},
        {"time_in_force": TimeInForce.OPG},
        {"time_in_force": TimeInForce.CLS},
        {"order_type": OrderType.MARKET, "limit_price": None, "time_in_force": TimeInForce.OPG},
        {"extended_hours": True},
        {
            "order_type": OrderType.TRAILING_STOP,
            "limit_price": None,
            "trail_price": D(1),
            "time_in_force": TimeInForce.GTD,
            "expire_ns": NOW + 1,
        },
    ],
)
def test_the_session_terms_the_broker_offers_are_accepted(fields: dict[str, object]) -> None:
    order = an_order(**fields)
    assert (order.time_in_force, order.expire_ns, order.extended_hours) == (
        fields.get("time_in_force", TimeInForce.DAY),
        fields.get("expire_ns"),
        fields.get("extended_hours", False),
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"time_in_force": TimeInForce.GTD}, "gtd needs expire_at"),
        ({"expire_ns": NOW + 1}, "expire_at applies to gtd orders only"),
        ({"time_in_force": TimeInForce.GTD, "expire_ns": NOW}, "must be in the future"),
        (
            {"order_type": OrderType.STOP, "limit_price": None, "stop_price": D(99)}
            | {"time_in_force": TimeInForce.OPG},
            "auction",
        ),
        (
            {"order_type": OrderType.STOP_LIMIT, "stop_price": D(99)}
            | {"time_in_force": TimeInForce.CLS},
            "auction",
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D(1)}
            | {"time_in_force": TimeInForce.OPG},
            "day, gtc or gtd only",
        ),
        ({"extended_hours": True, "time_in_force": TimeInForce.GTC}, "extended_hours"),
        (
            {"extended_hours": True, "order_type": OrderType.MARKET, "limit_price": None},
            "extended_hours",
        ),
        (
            {"extended_hours": True, "order_type": OrderType.STOP_LIMIT, "stop_price": D(99)},
            "extended_hours",
        ),
    ],
)
def test_session_terms_outside_the_offer_are_refused(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        an_order(**fields)


def test_a_replace_keeps_the_class_parent_session_and_date_of_the_original() -> None:
    original = live(time_in_force=TimeInForce.GTD, expire_ns=NOW + 500)
    original.order_class = OrderClass.BRACKET
    original.parent_id = "entry-1"
    successor = build_replacement(
        original, ReplaceRequest(limit_price=D(99)), AAPL, order_id="o2", now_ns=NOW + 2
    )
    assert (successor.order_class, successor.parent_id) == (OrderClass.BRACKET, "entry-1")
    assert (successor.time_in_force, successor.expire_ns) == (TimeInForce.GTD, NOW + 500)
    to_day = build_replacement(
        original,
        ReplaceRequest(time_in_force=TimeInForce.DAY),
        AAPL,
        order_id="o3",
        now_ns=NOW + 2,
    )
    assert (to_day.time_in_force, to_day.expire_ns) == (TimeInForce.DAY, None)


def test_a_replace_keeps_extended_hours() -> None:
    original = live(extended_hours=True)
    successor = build_replacement(
        original, ReplaceRequest(qty=D(3)), AAPL, order_id="o2", now_ns=NOW + 2
    )
    assert (successor.extended_hours, successor.qty) == (True, D(3))


def test_every_move_stamps_its_time_and_a_replace_says_so() -> None:
    order = an_order()
    order.hold(NOW + 1)
    assert (order.status, order.updated_ns) == (OrderStatus.HELD, NOW + 1)
    order.release(D(4), NOW + 2)
    assert (order.status, order.updated_ns, order.qty) == (OrderStatus.ACCEPTED, NOW + 2, D(4))
    order.replace_by("o2", NOW + 3)
    assert (order.status, order.updated_ns, order.reason, order.replaced_by) == (
        OrderStatus.REPLACED,
        NOW + 3,
        "replaced",
        "o2",
    )
    other = live()
    other.close(OrderStatus.EXPIRED, NOW + 4, "day order expired")
    assert (other.status, other.updated_ns, other.reason) == (
        OrderStatus.EXPIRED,
        NOW + 4,
        "day order expired",
    )


def test_a_stored_copy_takes_the_engines_notional_and_so_its_average() -> None:
    order = live()
    order.apply_fill(OrderStatus.PARTIALLY_FILLED, D(3), D("300.03"), 1, NOW + 2, released=D(0))
    assert (order.filled_qty, order.filled_notional, order.fill_count) == (D(3), D("300.03"), 1)
    assert order.filled_avg_price == D("100.01")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            {"time_in_force": TimeInForce.GTD, "expire_ns": NOW + 10},
            {"time_in_force": TimeInForce.GTD, "expire_ns": NOW + 20},
        ),
        ({"extended_hours": True}, {"extended_hours": False}),
    ],
)
def test_a_resubmission_must_keep_its_date_and_session(
    first: dict[str, object], second: dict[str, object]
) -> None:
    existing = an_order(client_order_id="c1", **first)
    assert resolve_resubmission(existing, a_request(client_order_id="c1", **first)) is existing
    with pytest.raises(AlreadyExists):
        resolve_resubmission(existing, a_request(client_order_id="c1", **second))


def test_a_fill_stamps_its_time_and_a_close_without_a_reason_gives_none() -> None:
    order = live()
    order.record_fill(D(2), D(100), NOW + 5)
    assert (order.status, order.updated_ns) == (OrderStatus.PARTIALLY_FILLED, NOW + 5)
    order.close(OrderStatus.CANCELED, NOW + 6)
    assert (order.status, order.updated_ns, order.reason) == (OrderStatus.CANCELED, NOW + 6, "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time_in_force": TimeInForce.GTD}, "time_in_force"),
        ({"time_in_force": TimeInForce.GTD, "expire_ns": NOW - 1}, "expire_at"),
        ({"extended_hours": True, "time_in_force": TimeInForce.GTC}, "extended_hours"),
    ],
)
def test_a_session_term_refusal_starts_with_the_field_it_concerns(
    fields: dict[str, object], field: str
) -> None:
    # The dashboard's order ticket puts the message next to the field it starts with.
    with pytest.raises(InvalidArgument) as caught:
        an_order(**fields)
    assert caught.value.message.startswith(field)


@pytest.mark.parametrize(
    ("market_now_ns", "expire_ns", "accepted"),
    [
        (None, NOW + 1, True),  # no market clock: the host's now decides
        (None, NOW, False),
        (NOW + 500, NOW + 200, False),  # replay ahead of the host: past on the market clock
        (NOW + 500, NOW + 501, True),
        (NOW - 500, NOW - 200, True),  # replay behind the host: still future on the market clock
        (NOW - 500, NOW - 500, False),
    ],
)
def test_a_gtd_expiry_must_be_in_the_future_of_the_market_clock_when_given(
    market_now_ns: int | None, expire_ns: int, accepted: bool
) -> None:
    request = a_request(time_in_force=TimeInForce.GTD, expire_ns=expire_ns)

    def build() -> Order:
        return new_order(
            request, AAPL, order_id="o1", account_id="a1", now_ns=NOW, market_now_ns=market_now_ns
        )

    if accepted:
        assert build().expire_ns == expire_ns
    else:
        with pytest.raises(InvalidArgument, match="future of the market clock"):
            build()
