"""Order validation, idempotency, replacement and the lifecycle state machine."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from cift.trading.orders import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    Order,
    OrderRequest,
    OrderStatus,
    ReplaceRequest,
    build_replacement,
    new_order,
    resolve_resubmission,
    validate_order_request,
)
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
FRAC = Instrument("FRAC", tick_size=D("0.01"), qty_increment=D("0.000000001"), fractionable=True)


def request(**overrides: object) -> OrderRequest:
    fields: dict[str, object] = {
        "symbol": "AAPL",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.DAY,
        "qty": D(10),
        "limit_price": D("100.25"),
    }
    fields.update(overrides)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def order(**overrides: object) -> Order:
    built = new_order(request(**overrides), AAPL, order_id="o1", account_id="a1", now_ns=1)
    return built


def accepted(**overrides: object) -> Order:
    built = order(**overrides)
    built.transition(OrderStatus.ACCEPTED, 2)
    return built


@pytest.mark.parametrize(
    "fields",
    [
        {"order_type": OrderType.MARKET, "limit_price": None},
        {"order_type": OrderType.LIMIT},
        {"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("99")},
        {"order_type": OrderType.STOP_LIMIT, "stop_price": D("99.5")},
        {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_price": D("1.5")},
        {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_percent": D("2.5")},
        {"order_type": OrderType.LIMIT, "time_in_force": TimeInForce.GTC},
        {"order_type": OrderType.LIMIT, "time_in_force": TimeInForce.IOC},
        {"order_type": OrderType.MARKET, "limit_price": None, "time_in_force": TimeInForce.FOK},
    ],
)
def test_every_order_type_and_tif_combination_the_broker_offers_is_accepted(
    fields: dict[str, object],
) -> None:
    built = order(**fields)
    assert built.status is OrderStatus.NEW
    assert built.order_type is fields["order_type"]


def frac_order(fields: OrderRequest) -> Order:
    return new_order(fields, FRAC, order_id="f1", account_id="a1", now_ns=1)


def test_fractional_quantity_is_accepted_where_the_instrument_allows_and_only_there() -> None:
    built = frac_order(request(symbol="FRAC", qty=D("0.5")))
    assert (built.status, built.qty, built.notional) == (OrderStatus.NEW, D("0.5"), None)
    with pytest.raises(InvalidArgument, match="does not trade in fractional shares"):
        validate_order_request(request(qty=D("0.5")), AAPL)


def test_notional_market_order_on_a_fractionable_instrument_is_accepted_and_only_there() -> None:
    fields = request(
        symbol="FRAC", order_type=OrderType.MARKET, qty=None, notional=D("250"), limit_price=None
    )
    built = frac_order(fields)
    assert (built.status, built.qty, built.notional) == (OrderStatus.NEW, None, D("250"))
    with pytest.raises(InvalidArgument, match="cannot be bought by notional"):
        validate_order_request(
            request(order_type=OrderType.MARKET, qty=None, notional=D("250"), limit_price=None),
            AAPL,
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"qty": D(0)}, "qty must be a positive number"),
        ({"qty": D(-5)}, "qty must be a positive number"),
        ({"qty": D("NaN")}, "qty must be a positive number"),
        ({"qty": D("1.5")}, "does not trade in fractional shares"),
        ({"qty": None}, "exactly one of qty"),
        ({"notional": D(100)}, "exactly one of qty"),
        ({"limit_price": None}, "limit_price is required"),
        ({"limit_price": D("100.255")}, "not on AAPL's tick grid"),
        ({"limit_price": D("-1")}, "limit_price must be a positive number"),
        ({"qty": None, "notional": D(100)}, "notional is only accepted for market orders"),
        ({"order_type": OrderType.MARKET}, "limit_price does not apply to market orders"),
        ({"stop_price": D(99)}, "stop_price does not apply to limit orders"),
        ({"order_type": OrderType.STOP, "limit_price": None}, "stop_price is required"),
        (
            {"order_type": OrderType.STOP_LIMIT, "stop_price": D("99.001")},
            "not on AAPL's tick grid",
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None},
            "exactly one of trail_price",
        ),
        (
            {
                "order_type": OrderType.TRAILING_STOP,
                "limit_price": None,
                "trail_price": D(1),
                "trail_percent": D(1),
            },
            "exactly one of trail_price",
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trail_percent": D(100)},
            "below 100",
        ),
        ({"trail_percent": D(1)}, "trail_percent does not apply"),
        (
            {
                "order_type": OrderType.STOP,
                "limit_price": None,
                "stop_price": D(99),
                "time_in_force": TimeInForce.IOC,
            },
            "applies to market and limit orders only",
        ),
        (
            {
                "order_type": OrderType.TRAILING_STOP,
                "limit_price": None,
                "trail_price": D(1),
                "time_in_force": TimeInForce.FOK,
            },
            "applies to market and limit orders only",
        ),
        ({"client_order_id": "x" * 129}, "at most 128 characters"),
        ({"client_order_id": "bad\nid"}, "printable"),
        ({"symbol": "MSFT"}, "does not match"),
    ],
)
def test_bad_order_requests_are_refused_with_a_clear_message(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_order_request(request(**fields), AAPL)


def test_notional_order_on_whole_share_instrument_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="cannot be bought by notional"):
        validate_order_request(
            request(order_type=OrderType.MARKET, qty=None, notional=D(100), limit_price=None), AAPL
        )


def test_notional_order_must_be_a_day_order() -> None:
    with pytest.raises(InvalidArgument, match="time_in_force day"):
        validate_order_request(
            request(
                symbol="FRAC",
                order_type=OrderType.MARKET,
                qty=None,
                notional=D(100),
                limit_price=None,
                time_in_force=TimeInForce.GTC,
            ),
            FRAC,
        )


def test_fractional_quantity_off_the_increment_grid_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="quantity increment"):
        validate_order_request(request(symbol="FRAC", qty=D("0.0000000001")), FRAC)


def test_untradable_instrument_is_refused() -> None:
    halted = Instrument("AAPL", D("0.01"), D(1), fractionable=False, tradable=False)
    with pytest.raises(InvalidArgument, match="not tradable"):
        validate_order_request(request(), halted)


# ---- state machine -------------------------------------------------------------


def test_order_moves_new_accepted_partially_filled_filled() -> None:
    live = accepted()
    live.record_fill(D(4), D("100.25"), 3)
    assert live.status is OrderStatus.PARTIALLY_FILLED
    live.record_fill(D(6), D("100.00"), 4)
    assert (live.status, live.filled_qty) == (OrderStatus.FILLED, D(10))
    assert live.filled_avg_price == D("100.1")


def test_cancel_of_a_filled_order_is_refused_with_failed_precondition() -> None:
    live = accepted()
    live.record_fill(D(10), D(100), 3)
    with pytest.raises(FailedPrecondition, match="Order o1 is filled, so it cannot be canceled"):
        live.transition(OrderStatus.CANCELED, 4)
    assert live.status is OrderStatus.FILLED


def test_fill_beyond_the_remaining_quantity_is_refused() -> None:
    live = accepted()
    live.record_fill(D(8), D(100), 3)
    with pytest.raises(FailedPrecondition, match="has 2 left to fill"):
        live.record_fill(D(3), D(100), 4)
    assert live.filled_qty == D(8)


def test_a_new_order_cannot_fill_before_it_is_accepted() -> None:
    with pytest.raises(FailedPrecondition, match="is new, so it cannot be filled"):
        order().record_fill(D(1), D(100), 2)


@given(st.lists(st.sampled_from(list(OrderStatus)), max_size=12))
def test_state_machine_accepts_exactly_the_allowed_transitions(targets: list[OrderStatus]) -> None:
    live = order()
    for target in targets:
        before = live.status
        if target in ALLOWED_TRANSITIONS[before]:
            live.transition(target, 5)
            assert live.status is target
        else:
            with pytest.raises(FailedPrecondition):
                live.transition(target, 5)
            assert live.status is before


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[status] == frozenset()


# ---- client_order_id idempotency ----------------------------------------------


def test_same_client_order_id_and_contents_returns_the_same_order() -> None:
    existing = order(client_order_id="c-1")
    assert resolve_resubmission(existing, request(client_order_id="c-1", qty=D("10.0"))) is existing


def test_same_client_order_id_with_different_contents_is_an_error() -> None:
    existing = order(client_order_id="c-1")
    with pytest.raises(AlreadyExists, match="already used for order o1"):
        resolve_resubmission(existing, request(client_order_id="c-1", qty=D(11)))


# ---- replace -------------------------------------------------------------------


def test_replace_defaults_to_the_unfilled_remainder_and_links_the_orders() -> None:
    live = accepted()
    live.record_fill(D(4), D(100), 3)
    successor = build_replacement(
        live, ReplaceRequest(limit_price=D("99.5")), AAPL, order_id="o2", now_ns=4
    )
    assert successor.qty == D(6)
    assert successor.limit_price == D("99.5")
    assert successor.replaces == "o1"
    assert successor.status is OrderStatus.NEW


def test_replace_of_a_filled_order_is_refused() -> None:
    live = accepted()
    live.record_fill(D(10), D(100), 3)
    with pytest.raises(FailedPrecondition, match="is filled, so it cannot be replaced"):
        build_replacement(live, ReplaceRequest(qty=D(5)), AAPL, order_id="o2", now_ns=4)


def test_replace_of_a_market_order_is_refused() -> None:
    live = accepted(order_type=OrderType.MARKET, limit_price=None)
    with pytest.raises(FailedPrecondition, match="Market orders cannot be replaced"):
        build_replacement(live, ReplaceRequest(qty=D(5)), AAPL, order_id="o2", now_ns=4)


def test_replace_validates_the_new_price_like_a_new_order() -> None:
    with pytest.raises(InvalidArgument, match="tick grid"):
        build_replacement(
            accepted(), ReplaceRequest(limit_price=D("99.999")), AAPL, order_id="o2", now_ns=4
        )


def test_replace_can_switch_a_trailing_stop_from_price_to_percent() -> None:
    live = accepted(order_type=OrderType.TRAILING_STOP, limit_price=None, trail_price=D(2))
    successor = build_replacement(
        live, ReplaceRequest(trail_percent=D(3)), AAPL, order_id="o2", now_ns=4
    )
    assert (successor.trail_price, successor.trail_percent) == (None, D(3))
