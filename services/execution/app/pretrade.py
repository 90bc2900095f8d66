"""Pre-trade figures for one order: the buying power it reserves and the risk service's verdict.

The reservation is the ledger's formula (`cift.trading.ledger.reservation_for`)
priced from the engine's last quote, or market data's when the engine has none;
the risk check hands the order with the account's figures to the `Risk` port.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from cift.runtime.errors import FailedPrecondition
from cift.trading.fills import (
    OpenOrders,
)
from cift.trading.ledger import (
    order_reservation_price,
    reservation_for,
)
from cift.trading.orders import (
    Order,
)
from cift.trading.vocabulary import OrderType, Side
from services.execution.app.live import LiveBook
from services.execution.app.ports import Market, OrderContext, Risk

log = logging.getLogger(__name__)


class PreTrade:
    def __init__(self, live: LiveBook, market: Market, risk: Risk) -> None:
        self.live = live
        self.market = market
        self.risk = risk

    async def reservation(
        self, order: Order, context: OrderContext, open_orders: OpenOrders
    ) -> Decimal:
        bid, ask, last = self.live.engine.last_prices(order.symbol)
        priced_by_limit = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if not priced_by_limit and (ask if order.side is Side.BUY else bid) is None:
            # Only an order priced by the market needs a quote the engine has not seen.
            quotes = await self.market.latest_prices([order.symbol])
            if order.symbol in quotes:
                bid, ask, last = quotes[order.symbol]
        price = order_reservation_price(order, bid if bid else last, ask if ask else last)
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
            position_qty=context.position_qty,
            open_qty_same_side=open_same_side,
        )

    async def risk_check(
        self, order: Order, context: OrderContext, open_orders: OpenOrders
    ) -> None:
        """Raise the risk service's refusal of `order`, if it refuses."""
        await self.risk.check(order, context, open_orders)
