"""The order's rules that a replace, a resubmission and a fill must keep, field by field."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from cift.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from cift.trading.orders import (
    Order,
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
FRAC = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D("0.0001"), fractionable=True)


def live(instrument: Instrument = AAPL, **fields: object) -> Order:
    base: dict[str, object] = {
        "symbol": "AAPL",
        "side": Side.SELL,
        "order_type": OrderType.STOP_LIMIT,
        "time_in_force": TimeInForce.GTC,
        "qty": D(10),
        "limit_price": D("99.00"),
        "stop_price": D("100.00"),
        "client_order_id": "c1",
    }
    base.update(fields)
    order = new_order(OrderRequest(**base), instrument, order_id="o1", account_id="a1", now_ns=1)  # type: ignore[arg-type]
    order.transition(OrderStatus.ACCEPTED, 2)
    return order


def replace(original: Order, **change: object) -> Order:
    return build_replacement(original, ReplaceRequest(**change), AAPL, order_id="o2", now_ns=3)  # type: ignore[arg-type]


def test_a_replace_carries_every_field_it_changes() -> None:
    successor = replace(
        live(),
        qty=D(4),
        limit_price=D("98.50"),
        stop_price=D("99.50"),
        time_in_force=TimeInForce.DAY,
        client_order_id="c2",
    )
    assert (successor.qty, successor.limit_price, successor.stop_price) == (
        D(4),
        D("98.50"),
        D("99.50"),
    )
    assert successor.time_in_force is TimeInForce.DAY
    assert successor.client_order_id == "c2"
    assert (successor.replaces, successor.account_id, successor.status) == (
        "o1",
        "a1",
        OrderStatus.NEW,
    )


def test_a_replace_keeps_what_it_does_not_change() -> None:
    original = live()
    original.record_fill(D(3), D(99), 5)
    successor = replace(original)
    assert successor.qty == D(7)  # the unfilled remainder
    assert (successor.limit_price, successor.stop_price) == (D("99.00"), D("100.00"))
    assert successor.time_in_force is TimeInForce.GTC
    assert (successor.side, successor.order_type) == (Side.SELL, OrderType.STOP_LIMIT)


def test_a_replace_of_a_trailing_stop_switches_between_price_and_percent() -> None:
    original = live(
        order_type=OrderType.TRAILING_STOP, limit_price=None, stop_price=None, trail_price=D(2)
    )
    by_percent = replace(original, trail_percent=D("1.5"))
    assert (by_percent.trail_price, by_percent.trail_percent) == (None, D("1.5"))
    kept = replace(original)
    assert (kept.trail_price, kept.trail_percent) == (D(2), None)
    wider = replace(original, trail_price=D(3))
    assert (wider.trail_price, wider.trail_percent) == (D(3), None)


def test_a_replace_is_validated_like_a_new_order() -> None:
    with pytest.raises(InvalidArgument, match="tick grid"):
        replace(live(), limit_price=D("98.505"))


@pytest.mark.parametrize("status", [OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.CANCELED])
def test_only_a_live_order_can_be_replaced(status: OrderStatus) -> None:
    order = new_order(
        OrderRequest(
            "AAPL", Side.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=D(1), limit_price=D(1)
        ),
        AAPL,
        order_id="o1",
        account_id="a1",
        now_ns=1,
    )
    if status is not OrderStatus.NEW:
        order.transition(OrderStatus.ACCEPTED, 2)
        if status is OrderStatus.FILLED:
            order.record_fill(D(1), D(1), 3)
        else:
            order.transition(status, 3)
    with pytest.raises(FailedPrecondition, match=status.value):
        replace(order)


@pytest.mark.parametrize(
    "different",
    [
        {"stop_price": D("100.50")},
        {"limit_price": D("98.00")},
        {"qty": D(11)},
        {"side": Side.BUY},
        {"time_in_force": TimeInForce.DAY},
        {"order_type": OrderType.STOP, "limit_price": None},
    ],
)
def test_a_resubmission_with_any_different_field_is_refused(different: dict[str, object]) -> None:
    existing = live()
    request = existing.request()
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    fields.update(different)
    with pytest.raises(AlreadyExists, match="different contents"):
        resolve_resubmission(existing, OrderRequest(**fields))  # type: ignore[arg-type]
    assert resolve_resubmission(existing, request) is existing


@pytest.mark.parametrize(
    ("kept", "changed"),
    [
        ({"trail_price": D(2)}, {"trail_price": D(3)}),
        ({"trail_percent": D(2)}, {"trail_percent": D(3)}),
    ],
)
def test_a_resubmitted_trailing_stop_must_keep_its_trail(
    kept: dict[str, Decimal], changed: dict[str, Decimal]
) -> None:
    existing = live(
        AAPL, order_type=OrderType.TRAILING_STOP, limit_price=None, stop_price=None, **kept
    )
    request = existing.request()
    assert (request.trail_price, request.trail_percent) == (
        kept.get("trail_price"),
        kept.get("trail_percent"),
    )
    other = OrderRequest(
        "AAPL",
        Side.SELL,
        OrderType.TRAILING_STOP,
        TimeInForce.GTC,
        qty=D(10),
        client_order_id="c1",
        **changed,  # type: ignore[arg-type]
    )
    with pytest.raises(AlreadyExists):
        resolve_resubmission(existing, other)


def test_a_resubmitted_notional_order_must_keep_its_dollars() -> None:
    existing = new_order(
        OrderRequest(
            "AAPL", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D(50), client_order_id="n"
        ),
        FRAC,
        order_id="o1",
        account_id="a1",
        now_ns=1,
    )
    assert existing.request().notional == D(50)
    other = OrderRequest(
        "AAPL", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D(60), client_order_id="n"
    )
    with pytest.raises(AlreadyExists):
        resolve_resubmission(existing, other)


@pytest.mark.parametrize(
    ("qty", "price"), [(D(0), D(99)), (D(1), D(0)), (D(-1), D(99)), (D(1), D(-1))]
)
def test_a_fill_needs_a_positive_quantity_and_price(qty: Decimal, price: Decimal) -> None:
    order = live()
    with pytest.raises(InvalidArgument, match="positive quantity and price"):
        order.record_fill(qty, price, 5)
    assert (order.filled_qty, order.fill_count, order.status) == (D(0), 0, OrderStatus.ACCEPTED)


def test_a_fill_larger_than_what_is_left_is_refused_and_changes_nothing() -> None:
    order = live()
    order.record_fill(D(4), D(99), 5)
    with pytest.raises(FailedPrecondition, match="6 left to fill"):
        order.record_fill(D(7), D(99), 6)
    assert (order.filled_qty, order.status) == (D(4), OrderStatus.PARTIALLY_FILLED)


def test_fills_accumulate_to_an_exact_average() -> None:
    order = live()
    order.record_fill(D(4), D("99.10"), 5)
    order.record_fill(D(6), D("99.35"), 6)
    assert order.status is OrderStatus.FILLED
    assert (order.filled_qty, order.filled_notional, order.fill_count) == (D(10), D("992.50"), 2)
    assert order.filled_avg_price == D("99.25")
    assert order.remaining_qty == 0


def a_request(**fields: object) -> OrderRequest:
    base: dict[str, object] = {
        "symbol": "AAPL",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.DAY,
        "qty": D(1),
        "limit_price": D(100),
    }
    base.update(fields)
    return OrderRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit_price": D("100.001")}, "limit_price"),
        ({"limit_price": D(0)}, "limit_price"),
        (
            {"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("1.001")},
            "stop_price",
        ),
        ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": D(0)}, "stop_price"),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D("0.001")},
            "trail_price",
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D(0)},
            "trail_price",
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_percent": D(0)},
            "trail_percent",
        ),
        ({"trail_price": D(1)}, "trail_price"),
        ({"trail_percent": D(1)}, "trail_percent"),
        ({"stop_price": D(1)}, "stop_price"),
        (
            {"order_type": OrderType.MARKET, "limit_price": None, "qty": None, "notional": D(0)},
            "notional",
        ),
    ],
)
def test_a_refusal_names_the_field_it_concerns(fields: dict[str, object], field: str) -> None:
    # Clients (the dashboard's order ticket) put the message next to the field it names.
    with pytest.raises(InvalidArgument) as caught:
        new_order(a_request(**fields), FRAC, order_id="o1", account_id="a1", now_ns=1)
    assert caught.value.message.startswith(field)


def test_a_client_order_id_of_exactly_128_characters_is_accepted() -> None:
    order = new_order(
        a_request(client_order_id="c" * 128), AAPL, order_id="o1", account_id="a1", now_ns=1
    )
    assert len(order.client_order_id) == 128
    with pytest.raises(InvalidArgument, match="128"):
        new_order(
            a_request(client_order_id="c" * 129), AAPL, order_id="o1", account_id="a1", now_ns=1
        )


def test_a_new_order_and_its_successor_carry_their_ids_and_times() -> None:
    order = new_order(a_request(), AAPL, order_id="o1", account_id="a1", now_ns=7)
    assert (order.order_id, order.account_id, order.created_ns, order.updated_ns) == (
        "o1",
        "a1",
        7,
        7,
    )
    assert order.reason == ""
    order.transition(OrderStatus.ACCEPTED, 8)
    assert (order.updated_ns, order.reason) == (8, "")
    successor = build_replacement(
        order, ReplaceRequest(limit_price=D(99)), AAPL, order_id="o2", now_ns=9
    )
    assert (successor.order_id, successor.created_ns, successor.updated_ns) == ("o2", 9, 9)
    order.transition(OrderStatus.CANCELED, 10, "canceled by the trader")
    assert (order.status, order.updated_ns, order.reason) == (
        OrderStatus.CANCELED,
        10,
        "canceled by the trader",
    )


def test_resubmitting_a_stop_with_its_own_stop_returns_the_order() -> None:
    existing = live()
    same = OrderRequest(
        "AAPL",
        Side.SELL,
        OrderType.STOP_LIMIT,
        TimeInForce.GTC,
        qty=D(10),
        limit_price=D("99.00"),
        stop_price=D("100.00"),
        client_order_id="c1",
    )
    assert resolve_resubmission(existing, same) is existing


def test_a_notional_fill_completes_only_when_told() -> None:
    order = new_order(
        a_request(order_type=OrderType.MARKET, limit_price=None, qty=None, notional=D(50)),
        FRAC,
        order_id="o1",
        account_id="a1",
        now_ns=1,
    )
    order.transition(OrderStatus.ACCEPTED, 2)
    statuses = []
    order.record_fill(D("0.2"), D(100), 3)
    statuses.append(order.status)
    order.record_fill(D("0.3"), D(100), 4, completes=True)
    statuses.append(order.status)
    assert statuses == [OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
