"""The gRPC edge of execution's account reads: positions, the account, activities and
portfolio history. Decode, call the use case (`app/portfolio.py`), encode.

`server.ExecutionServicer` serves the whole ExecutionService and hands these five
calls to an `AccountReads` it holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from cift.execution.v1 import execution_pb2
from cift.runtime.errors import InvalidArgument, NotFound
from cift.runtime.identity import current_identity
from cift.runtime.order_wire import (
    SIDE_TO_PB,
)
from cift.runtime.timestamps import timestamp_of
from services.execution.adapters.requests import (
    ACTIVITY_FROM_PB,
    ACTIVITY_TO_PB,
    TIMEFRAMES,
    next_page_token,
    page_query,
    page_size,
    period_days,
    target_account,
)
from services.execution.adapters.wire import dec, explanation_message
from services.execution.app.broker import Broker

Ctx = grpc.aio.ServicerContext[Any, Any]


class AccountReads:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def _positions(self, account_id: str, symbol: str | None) -> list[execution_pb2.Position]:
        return [
            execution_pb2.Position(
                account_id=account_id,
                symbol=f.symbol,
                side=execution_pb2.POSITION_SIDE_LONG
                if f.qty > 0
                else execution_pb2.POSITION_SIDE_SHORT,
                qty=dec(f.qty),
                qty_available=dec(f.qty_available),
                avg_entry_price=dec(f.avg_entry_price),
                cost_basis=dec(f.cost_basis),
                current_price=dec(f.current_price),
                market_value=dec(f.market_value),
                lastday_price=dec(f.lastday_price),
                change_today=dec(f.change_today),
                unrealized_pl=dec(f.unrealized_pl),
                unrealized_plpc=dec(f.unrealized_plpc),
                unrealized_intraday_pl=dec(f.unrealized_intraday_pl),
                realized_pl=dec(f.realized_pl),
                updated_at=timestamp_of(f.updated_at),
            )
            for f in await self.broker.positions(account_id, symbol)
        ]

    async def ListPositions(
        self, request: execution_pb2.ListPositionsRequest, context: Ctx
    ) -> execution_pb2.ListPositionsResponse:
        account_id = target_account(current_identity(), request.account_id)
        return execution_pb2.ListPositionsResponse(
            positions=await self._positions(account_id, None)
        )

    async def GetPosition(
        self, request: execution_pb2.GetPositionRequest, context: Ctx
    ) -> execution_pb2.GetPositionResponse:
        account_id = target_account(current_identity(), request.account_id)
        symbol = request.symbol.strip().upper()
        found = await self._positions(account_id, symbol)
        if not found:
            raise NotFound(f"There is no open position in {symbol}.")
        return execution_pb2.GetPositionResponse(position=found[0])

    async def GetAccount(
        self, request: execution_pb2.GetAccountRequest, context: Ctx
    ) -> execution_pb2.GetAccountResponse:
        account_id = target_account(current_identity(), request.account_id)
        row, figures = await self.broker.account(account_id)
        return execution_pb2.GetAccountResponse(
            account=execution_pb2.Account(
                id=account_id,
                status=execution_pb2.ACCOUNT_STATUS_ACTIVE,
                currency="USD",
                cash=dec(figures.cash),
                equity=dec(figures.equity),
                buying_power=dec(figures.buying_power),
                reserved_buying_power=dec(figures.reserved),
                long_market_value=dec(figures.long_market_value),
                short_market_value=dec(figures.short_market_value),
                realized_pl=dec(figures.realized_pnl),
                unrealized_pl=dec(figures.unrealized_pnl),
                day_pl=dec(figures.day_pnl),
                last_equity=dec(figures.last_equity),
                multiplier=dec(row["margin_multiplier"]),
                created_at=timestamp_of(row["created_at"]),
                updated_at=timestamp_of(row["updated_at"]),
            )
        )

    async def ListActivities(
        self, request: execution_pb2.ListActivitiesRequest, context: Ctx
    ) -> execution_pb2.ListActivitiesResponse:
        account_id = target_account(current_identity(), request.account_id)
        await self.broker.ensure_account(account_id)
        types = [ACTIVITY_FROM_PB[t] for t in request.activity_types if t in ACTIVITY_FROM_PB]
        limit = page_size(request.page_size)
        rows, explained = await self.broker.reads.activities(
            account_id, page_query(request, limit), types=types, limit=limit
        )
        token = next_page_token(rows, limit, "occurred_at", "activity_id")
        activities = [
            execution_pb2.Activity(
                id=r["activity_id"],
                account_id=r["account_id"],
                activity_type=ACTIVITY_TO_PB[r["activity_type"]],
                occurred_at=timestamp_of(r["occurred_at"]),
                net_amount=dec(r["net_amount"]),
                symbol=r["symbol"],
                side=SIDE_TO_PB.get(r["side"], 0),  # type: ignore[arg-type, call-overload]
                qty=dec(r["qty"]),
                price=dec(r["price"]),
                order_id=r["order_id"],
                description=r["description"],
                fill_explanation=(
                    explanation_message(explained[r["activity_id"]])
                    if r["activity_id"] in explained
                    else None
                ),
            )
            for r in rows[:limit]
        ]
        return execution_pb2.ListActivitiesResponse(activities=activities, next_page_token=token)

    async def GetPortfolioHistory(
        self, request: execution_pb2.GetPortfolioHistoryRequest, context: Ctx
    ) -> execution_pb2.GetPortfolioHistoryResponse:
        account_id = target_account(current_identity(), request.account_id)
        days = period_days(request.period or "1M")
        timeframe = request.timeframe or ("5Min" if days <= 1 else "1Day")
        if timeframe not in TIMEFRAMES:
            raise InvalidArgument("timeframe must be one of 1Min, 5Min, 15Min, 1Hour, 1Day.")
        up_to_now = not request.HasField("end")
        end = datetime.now(UTC) if up_to_now else request.end.ToDatetime(tzinfo=UTC)
        points = await self.broker.portfolio.history(
            account_id, end - timedelta(days=days), end, TIMEFRAMES[timeframe], up_to_now=up_to_now
        )
        reply = execution_pb2.GetPortfolioHistoryResponse(timeframe=timeframe)
        if not points:
            return reply
        reply.base_value = dec(points[0].equity)
        for point in points:
            stamp = timestamp_of(point.at)
            assert stamp is not None
            reply.timestamps.append(stamp)
            reply.equity.append(dec(point.equity))
            reply.profit_loss.append(dec(point.profit_loss))
            reply.profit_loss_pct.append(dec(point.profit_loss_pct))
        return reply
