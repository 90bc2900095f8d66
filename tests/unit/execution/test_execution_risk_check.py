"""The pre-trade check's wire edge: the request risk receives and the refusal a trader sees."""

from __future__ import annotations

from decimal import Decimal

import pytest
from google.protobuf.duration_pb2 import Duration

from cift.risk.v1 import risk_pb2, rules_pb2
from cift.runtime.errors import FailedPrecondition, ResourceExhausted
from cift.trading.fills import OpenOrders
from cift.trading.orders import Order, OrderRequest, new_order
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce
from services.execution.adapters.risk_check import RiskCheck, check_request, raise_refusal
from services.execution.app.ports import OrderContext

D = Decimal
AAPL = Instrument("AAPL", D("0.01"), D(1), True, True)


def context(buying_power: Decimal | None, reserved: Decimal) -> OrderContext:
    return OrderContext(
        buying_power=buying_power,
        reserved=reserved,
        gross_cost=D("1500.00"),
        event_seq=7,
        position_qty=D(-3),
        existing_order_id=None,
    )


def order() -> Order:
    placed = new_order(
        OrderRequest("AAPL", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, D(5), None, D("10.01")),
        AAPL,
        order_id="o-1",
        account_id="acct-1",
        now_ns=1,
    )
    placed.reserve(D("50.05"))
    return placed


def test_the_request_carries_the_buying_power_left_after_reservations() -> None:
    request = check_request(
        order(),
        context(D("1000.00"), D("400.00")),
        OpenOrders(D(2), D(1), 3),
    )
    assert (request.buying_power, request.order_cost, request.gross_exposure) == (
        "600",
        "50.05",
        "1500",
    )
    assert (request.position_qty, request.open_buy_qty, request.open_sell_qty) == ("-3", "2", "1")
    assert (request.open_order_count, request.limit_price, request.qty) == (3, "10.01", "5")


@pytest.mark.parametrize(("stored", "reserved"), [(D("100.00"), D("250.00")), (None, D(0))])
def test_over_reserved_or_unstored_buying_power_is_sent_as_zero(
    stored: Decimal | None, reserved: Decimal
) -> None:
    request = check_request(order(), context(stored, reserved), OpenOrders(D(0), D(0), 0))
    assert request.buying_power == "0"


def test_an_approval_raises_nothing_and_a_violation_is_a_failed_precondition() -> None:
    raise_refusal(risk_pb2.CheckOrderResponse(approved=True))
    refused = risk_pb2.CheckOrderResponse(
        approved=False,
        violations=[
            rules_pb2.Violation(
                reason_code=rules_pb2.REASON_CODE_MAX_POSITION_QTY, message="Too big."
            )
        ],
    )
    with pytest.raises(FailedPrecondition, match="Too big") as raised:
        raise_refusal(refused)
    assert raised.value.reason == "MAX_POSITION_QTY"


def test_a_rate_limit_becomes_resource_exhausted_with_its_retry_delay() -> None:
    limited = risk_pb2.CheckOrderResponse(
        approved=False,
        violations=[
            rules_pb2.Violation(reason_code=rules_pb2.REASON_CODE_RATE_LIMITED, message="Slow.")
        ],
        retry_after=Duration(seconds=2, nanos=500_000_000),
    )
    with pytest.raises(ResourceExhausted) as raised:
        raise_refusal(limited)
    assert (raised.value.retry_after_s, raised.value.reason) == (2.5, "RATE_LIMITED")


async def test_the_port_sends_one_request_and_raises_its_refusal() -> None:
    class Refuses:
        def __init__(self) -> None:
            self.seen: list[risk_pb2.CheckOrderRequest] = []

        async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
            self.seen.append(request)
            return risk_pb2.CheckOrderResponse(request_id=request.request_id, approved=False)

    client = Refuses()
    with pytest.raises(FailedPrecondition, match="rejected this order") as raised:
        await RiskCheck(client).check(order(), context(D(1000), D(0)), OpenOrders(D(0), D(0), 0))
    assert [r.request_id for r in client.seen] == ["o-1"]
    assert raised.value.reason == "UNSPECIFIED"
