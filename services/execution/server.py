"""The gRPC edge of the execution service: decode the request, call the broker, encode the reply.

Order entry and order reads are here; account, position, activity and history reads
are in `server_accounts.py`.

No business rule lives here. Who may call what is the runtime's policy table
(`__main__.py`); here a caller only ever reaches its own account unless admin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from cift.execution.v1 import events_pb2, execution_pb2, execution_pb2_grpc, orders_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.identity import current_identity
from cift.runtime.money import optional_decimal
from cift.runtime.order_wire import (
    CLASS_FROM_PB,
    SIDE_FROM_PB,
    TIF_FROM_PB,
    TYPE_FROM_PB,
    price_terms_from_wire,
)
from cift.trading.order_classes import ClassedRequest, StopLoss, TakeProfit
from cift.trading.orders import OrderRequest, OrderStatus, ReplaceRequest
from services.execution.adapters import order_rows
from services.execution.adapters.order_replies import (
    completed_order_reply,
    fill_replies,
    orders_with_legs,
)
from services.execution.adapters.requests import (
    next_page_token,
    page_query,
    page_size,
    symbol_list,
    target_account,
)
from services.execution.adapters.wire import order_message
from services.execution.app.broker import Broker
from services.execution.app.group_entry import needs_group_entry
from services.execution.server_accounts import AccountReads

Ctx = grpc.aio.ServicerContext[Any, Any]


class ExecutionServicer(execution_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.accounts = AccountReads(broker)

    async def _order_reply(self, order_id: str) -> orders_pb2.Order:
        stored = await self.broker.reads.order(order_id)
        return orders_with_legs(stored.rows, stored.legs)[0]

    async def SubmitOrder(
        self, request: execution_pb2.SubmitOrderRequest, context: Ctx
    ) -> execution_pb2.SubmitOrderResponse:  # type: ignore[override]
        identity = current_identity()
        if request.side not in SIDE_FROM_PB:
            raise InvalidArgument("side is required: ORDER_SIDE_BUY or ORDER_SIDE_SELL.")
        if request.type not in TYPE_FROM_PB:
            raise InvalidArgument(
                "type is required: MARKET, LIMIT, STOP, STOP_LIMIT or TRAILING_STOP."
            )
        if request.time_in_force not in TIF_FROM_PB:
            raise InvalidArgument("time_in_force must be DAY, GTC, GTD, IOC, FOK, OPG or CLS.")
        if request.order_class not in CLASS_FROM_PB:
            raise InvalidArgument("order_class must be SIMPLE, BRACKET, OCO or OTO.")
        if not request.symbol.strip():
            raise InvalidArgument("symbol is required.")
        order_request = OrderRequest(
            symbol=request.symbol.strip().upper(),
            side=SIDE_FROM_PB[request.side],
            order_type=TYPE_FROM_PB[request.type],
            time_in_force=TIF_FROM_PB[request.time_in_force],
            **price_terms_from_wire(request),
            client_order_id=request.client_order_id,
            expire_ns=request.expire_at.ToNanoseconds() if request.HasField("expire_at") else None,
            extended_hours=request.extended_hours,
        )
        classed = ClassedRequest(
            order_request,
            CLASS_FROM_PB[request.order_class],
            TakeProfit(optional_decimal("take_profit.limit_price", request.take_profit.limit_price))
            if request.HasField("take_profit")
            else None,
            StopLoss(
                stop_price=optional_decimal("stop_loss.stop_price", request.stop_loss.stop_price),
                limit_price=optional_decimal(
                    "stop_loss.limit_price", request.stop_loss.limit_price
                ),
                trail_price=optional_decimal(
                    "stop_loss.trail_price", request.stop_loss.trail_price
                ),
                trail_percent=optional_decimal(
                    "stop_loss.trail_percent", request.stop_loss.trail_percent
                ),
            )
            if request.HasField("stop_loss")
            else None,
        )
        if needs_group_entry(classed):
            parent = await self.broker.submit_group(identity.account_id, classed)
            return execution_pb2.SubmitOrderResponse(order=await self._order_reply(parent.order_id))
        placed = await self.broker.place(identity.account_id, order_request)
        order = placed.order
        if placed.completed is not None:
            # Filled as it was booked: its fill wrote this final state with it.
            filled = placed.completed
            return execution_pb2.SubmitOrderResponse(
                order=completed_order_reply(filled.order, filled.commission)
            )
        if order.status is OrderStatus.ACCEPTED and order.fill_count == 0:
            # Resting untouched: the row holds exactly this (no fills, commission
            # or closing time), so the reply needs no read back.
            return execution_pb2.SubmitOrderResponse(order=order_message(order))
        return execution_pb2.SubmitOrderResponse(order=await self._order_reply(order.order_id))

    async def GetOrder(
        self, request: execution_pb2.GetOrderRequest, context: Ctx
    ) -> execution_pb2.GetOrderResponse:  # type: ignore[override]
        identity = current_identity()
        stored = await self.broker.reads.owned_order(
            identity.account_id, request.order_id, identity.is_admin
        )
        (order,) = orders_with_legs(stored.rows, stored.legs)
        return execution_pb2.GetOrderResponse(order=order, fills=fill_replies(stored.fills))

    async def ListOrders(
        self, request: execution_pb2.ListOrdersRequest, context: Ctx
    ) -> execution_pb2.ListOrdersResponse:  # type: ignore[override]
        identity = current_identity()
        account_id = target_account(identity, request.account_id)
        status = request.status or "open"
        if status not in ("open", "closed", "all"):
            raise InvalidArgument("status must be open, closed or all.")
        statuses = {
            "open": list(order_rows.OPEN),
            "closed": ["filled", "canceled", "expired", "rejected", "replaced"],
            "all": None,
        }[status]
        limit = page_size(request.page_size)
        page, rows = await self.broker.reads.orders(
            account_id,
            page_query(request, limit),
            statuses=statuses,
            symbols=symbol_list(list(request.symbols)),
            limit=limit,
        )
        orders = orders_with_legs(page.rows, page.legs)
        token = next_page_token(rows, limit, "created_at", "order_id")
        return execution_pb2.ListOrdersResponse(orders=orders, next_page_token=token)

    async def ReplaceOrder(
        self, request: execution_pb2.ReplaceOrderRequest, context: Ctx
    ) -> execution_pb2.ReplaceOrderResponse:  # type: ignore[override]
        identity = current_identity()
        change = ReplaceRequest(
            qty=optional_decimal("qty", request.qty) if request.HasField("qty") else None,
            time_in_force=TIF_FROM_PB.get(request.time_in_force)
            if request.HasField("time_in_force")
            else None,
            limit_price=optional_decimal("limit_price", request.limit_price)
            if request.HasField("limit_price")
            else None,
            stop_price=optional_decimal("stop_price", request.stop_price)
            if request.HasField("stop_price")
            else None,
            trail_price=optional_decimal("trail_price", request.trail_price)
            if request.HasField("trail_price")
            else None,
            trail_percent=optional_decimal("trail_percent", request.trail_percent)
            if request.HasField("trail_percent")
            else None,
            client_order_id=request.client_order_id if request.HasField("client_order_id") else "",
        )
        if request.HasField("time_in_force") and change.time_in_force is None:
            raise InvalidArgument("time_in_force must be DAY, GTC, IOC or FOK.")
        successor = await self.broker.replace(
            identity.account_id, request.order_id, change, is_admin=identity.is_admin
        )
        return execution_pb2.ReplaceOrderResponse(order=await self._order_reply(successor.order_id))

    async def CancelOrder(
        self, request: execution_pb2.CancelOrderRequest, context: Ctx
    ) -> execution_pb2.CancelOrderResponse:  # type: ignore[override]
        identity = current_identity()
        order = await self.broker.cancel(
            identity.account_id, request.order_id, is_admin=identity.is_admin
        )
        return execution_pb2.CancelOrderResponse(order=await self._order_reply(order.order_id))

    async def CancelAllOrders(
        self, request: execution_pb2.CancelAllOrdersRequest, context: Ctx
    ) -> execution_pb2.CancelAllOrdersResponse:  # type: ignore[override]
        identity = current_identity()
        results = await self.broker.cancel_all(
            identity.account_id, symbol_list(list(request.symbols))
        )
        reply = execution_pb2.CancelAllOrdersResponse()
        for order_id, _, message in results:
            reply.cancellations.add(
                order_id=order_id,
                canceled=not message,
                order=await self._order_reply(order_id),
                message=message,
            )
        return reply

    async def StreamOrderUpdates(
        self, request: execution_pb2.StreamOrderUpdatesRequest, context: Ctx
    ) -> AsyncIterator[execution_pb2.StreamOrderUpdatesResponse]:  # type: ignore[override]
        identity = current_identity()
        account_id = target_account(identity, request.account_id)
        queue = self.broker.subscribe(account_id)
        try:
            # Headers now, not with the first event: a client (REST through the gateway
            # above all, which answers only once gRPC headers arrive) learns the
            # subscription is live before it places the orders it wants to watch.
            await context.send_initial_metadata(())
            last = request.resume_after_sequence
            if last > 0:
                for payload in await self.broker.reads.order_events_after(account_id, last):
                    event = events_pb2.OrderEvent.FromString(payload)
                    last = event.sequence
                    yield execution_pb2.StreamOrderUpdatesResponse(event=event)
            while True:
                event = events_pb2.OrderEvent.FromString(await queue.get())
                if event.sequence <= last:
                    continue  # already replayed from the store
                last = event.sequence
                yield execution_pb2.StreamOrderUpdatesResponse(event=event)
        except asyncio.CancelledError:
            raise
        finally:
            self.broker.unsubscribe(account_id, queue)

    async def ClosePosition(
        self, request: execution_pb2.ClosePositionRequest, context: Ctx
    ) -> execution_pb2.ClosePositionResponse:  # type: ignore[override]
        identity = current_identity()
        qty = optional_decimal("qty", request.qty)
        percentage = optional_decimal("percentage", request.percentage)
        if qty is not None and percentage is not None:
            raise InvalidArgument("Send at most one of qty and percentage.")
        order = await self.broker.close_position(
            identity.account_id, request.symbol.strip().upper(), qty, percentage
        )
        return execution_pb2.ClosePositionResponse(order=await self._order_reply(order.order_id))

    # ---- account reads: `server_accounts.py` -------------------------------------

    async def ListPositions(
        self, request: execution_pb2.ListPositionsRequest, context: Ctx
    ) -> execution_pb2.ListPositionsResponse:  # type: ignore[override]
        return await self.accounts.ListPositions(request, context)

    async def GetPosition(
        self, request: execution_pb2.GetPositionRequest, context: Ctx
    ) -> execution_pb2.GetPositionResponse:  # type: ignore[override]
        return await self.accounts.GetPosition(request, context)

    async def GetAccount(
        self, request: execution_pb2.GetAccountRequest, context: Ctx
    ) -> execution_pb2.GetAccountResponse:  # type: ignore[override]
        return await self.accounts.GetAccount(request, context)

    async def ListActivities(
        self, request: execution_pb2.ListActivitiesRequest, context: Ctx
    ) -> execution_pb2.ListActivitiesResponse:  # type: ignore[override]
        return await self.accounts.ListActivities(request, context)

    async def GetPortfolioHistory(
        self, request: execution_pb2.GetPortfolioHistoryRequest, context: Ctx
    ) -> execution_pb2.GetPortfolioHistoryResponse:  # type: ignore[override]
        return await self.accounts.GetPortfolioHistory(request, context)
