"""The pre-trade check as a call to the risk service: an order and its account's figures in,
approval or the refusal as an error out.

The one place execution builds a `CheckOrderRequest` and reads a verdict; order entry
calls `RiskCheck.check` with domain values only.
"""

from __future__ import annotations

from typing import Protocol

from cift.risk.v1 import risk_pb2, rules_pb2
from cift.runtime.errors import FailedPrecondition, ResourceExhausted
from cift.trading.fills import OpenOrders
from cift.trading.orders import Order
from services.execution.adapters.wire import dec, order_terms
from services.execution.app.ports import OrderContext


class RiskClient(Protocol):
    """The risk service's CheckOrder (`upstream.RiskGate`, or a stand-in in tests)."""

    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse: ...


class RiskCheck:
    """Implements the `Risk` port over a `RiskClient`."""

    def __init__(self, client: RiskClient) -> None:
        self.client = client

    async def check(self, order: Order, context: OrderContext, open_orders: OpenOrders) -> None:
        raise_refusal(await self.client.check(check_request(order, context, open_orders)))


def check_request(
    order: Order, context: OrderContext, open_orders: OpenOrders
) -> risk_pb2.CheckOrderRequest:
    return risk_pb2.CheckOrderRequest(
        request_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        qty=dec(order.qty),
        order_cost=dec(order.reserved),
        buying_power=dec(context.available),
        position_qty=dec(context.position_qty),
        open_buy_qty=dec(open_orders.buy_qty),
        open_sell_qty=dec(open_orders.sell_qty),
        open_order_count=open_orders.count,
        gross_exposure=dec(context.gross_cost),
        client_order_id=order.client_order_id,
        **order_terms(order),
    )


def raise_refusal(result: risk_pb2.CheckOrderResponse) -> None:
    """Nothing when approved; else the first violation as the error the trader sees."""
    if result.approved:
        return
    violation = result.violations[0] if result.violations else None
    reason = _reason_name(violation.reason_code) if violation else "UNSPECIFIED"
    message = violation.message if violation else "The risk service rejected this order."
    if reason == "RATE_LIMITED":
        retry = (
            result.retry_after.ToTimedelta().total_seconds()
            if result.HasField("retry_after")
            else 1.0
        )
        raise ResourceExhausted(message, retry_after_s=retry, reason=reason)
    raise FailedPrecondition(message, reason=reason)


def _reason_name(code: int) -> str:
    return rules_pb2.ReasonCode.Name(code).removeprefix("REASON_CODE_")  # type: ignore[arg-type]
