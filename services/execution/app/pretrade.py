"""Pre-trade figures for one order: the buying power it reserves and the risk service's verdict.

The reservation is the ledger's formula (`cift.trading.ledger.reservation_for`)
priced from the engine's last quote, or market data's when the engine has none;
the risk check sends the order with the account's figures to the risk service.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import asyncpg

from cift.risk.v1 import risk_pb2, rules_pb2
from cift.runtime.errors import FailedPrecondition, ResourceExhausted
from cift.runtime.order_wire import SIDE_TO_PB, TIF_TO_PB, TYPE_TO_PB
from cift.trading.fills import (
    OpenOrders,
)
from cift.trading.ledger import (
    buying_power,
    reservation_for,
    reservation_price,
)
from cift.trading.orders import (
    Order,
)
from cift.trading.vocabulary import OrderType, Side
from services.execution.adapters.wire import (
    dec,
)
from services.execution.app.live import LiveBook
from services.execution.app.ports import Market, Risk

log = logging.getLogger(__name__)


class PreTrade:
    def __init__(self, live: LiveBook, market: Market, risk: Risk) -> None:
        self.live = live
        self.market = market
        self.risk = risk

    async def reservation(
        self, order: Order, context: asyncpg.Record, open_orders: OpenOrders
    ) -> Decimal:
        bid, ask, last = self.live.engine.last_prices(order.symbol)
        priced_by_limit = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if not priced_by_limit and (ask if order.side is Side.BUY else bid) is None:
            # Only an order priced by the market needs a quote the engine has not seen.
            quotes = await self.market.latest_prices([order.symbol])
            if order.symbol in quotes:
                bid, ask, last = quotes[order.symbol]
        price = reservation_price(
            side=order.side,
            order_type=order.order_type,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            trail_price=order.trail_price,
            trail_percent=order.trail_percent,
            bid=bid if bid else last,
            ask=ask if ask else last,
        )
        if price is None or price <= 0:
            raise FailedPrecondition(
                f"{order.symbol} has no quote yet, so a {order.order_type.value} order cannot be priced.",
                reason="NO_FRESH_QUOTE",
            )
        open_same_side = open_orders.buy_qty if order.side is Side.BUY else open_orders.sell_qty
        return reservation_for(
            side=order.side,
            qty=order.qty,
            notional=order.notional,
            price=price,
            position_qty=context["position_qty"],
            open_qty_same_side=open_same_side,
        )

    async def risk_check(
        self, order: Order, context: asyncpg.Record, open_orders: OpenOrders
    ) -> None:
        available = (
            buying_power(
                context["cash"],
                context["net_cost"],
                context["gross_cost"],
                context["margin_multiplier"],
            )
            - context["reserved"]
        )
        request = risk_pb2.CheckOrderRequest(
            request_id=order.order_id,
            account_id=order.account_id,
            symbol=order.symbol,
            side=SIDE_TO_PB[order.side],
            type=TYPE_TO_PB[order.order_type],
            time_in_force=TIF_TO_PB[order.time_in_force],
            qty=dec(order.qty),
            notional=dec(order.notional),
            limit_price=dec(order.limit_price),
            stop_price=dec(order.stop_price),
            trail_price=dec(order.trail_price),
            trail_percent=dec(order.trail_percent),
            order_cost=dec(order.reserved),
            buying_power=dec(max(Decimal(0), available)),
            position_qty=dec(context["position_qty"]),
            open_buy_qty=dec(open_orders.buy_qty),
            open_sell_qty=dec(open_orders.sell_qty),
            open_order_count=open_orders.count,
            gross_exposure=dec(context["gross_cost"]),
            client_order_id=order.client_order_id,
        )
        result = await self.risk.check(request)
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
