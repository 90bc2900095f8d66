"""A paper trading session on an nyse market clock this test moves: market data and
execution processes of the test's own, and optionally a gateway in front of them.

The stack's market clock is always open, which has no auctions or extended hours.
A paper session runs a market data process with the nyse calendar and its clock
pinned by `CIFT_MARKETDATA_CLOCK_START`, and an execution process that reads that
clock (both with databases of their own; risk, auth and the simulator's ticks are
the stack's). Moving the clock is restarting market data with a later start:
execution keeps its book and sees the session open or close at its next poll.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.config import env_name
from cift.runtime.kafka import ensure_topics
from tests.integration.execution.exec_stack import CENT, Mesh, Trader, eventually, price
from tests.integration.execution.processes import (
    ServiceProcess,
    own_database,
    own_gateway,
    service_environ,
)

# A Monday in December: New York is at UTC-05:00; the session runs 09:30-16:00.
MONDAY = "2026-12-07"
CLOCK_START = env_name("marketdata_clock_start")


def at(clock: str) -> str:
    """The ISO instant of `clock` (HH:MM:SS, New York) on the test's Monday."""
    return f"{MONDAY}T{clock}-05:00"


@dataclass
class PaperSession:
    """An execution process whose market clock is a market data process this test moves."""

    marketdata: ServiceProcess
    execution: execution_pb2_grpc.ExecutionServiceAsyncStub
    clock: marketdata_pb2_grpc.MarketDataServiceAsyncStub
    symbol: str
    # The base URL of a gateway routing to this session's processes ("" when none runs).
    gateway_url: str = ""

    async def move_clock(self, start: str) -> None:
        """Restart market data with its clock reading `start` (ISO 8601) now."""
        assert await self.marketdata.stop() == 0
        self.marketdata.environ[CLOCK_START] = start
        await self.marketdata.start()

    async def market_clock(self) -> marketdata_pb2.GetClockResponse:
        return await self.clock.GetClock(marketdata_pb2.GetClockRequest())

    async def submit(self, trader: Trader, **fields: object) -> orders_pb2.Order:
        """Submit through execution, once its channel to the restarted market data is back.

        UNAVAILABLE is execution saying market data cannot be reached yet; any other
        answer (an order or a refusal) is final.
        """
        request = execution_pb2.SubmitOrderRequest(symbol=self.symbol, **fields)  # type: ignore[arg-type]

        async def answered() -> orders_pb2.Order | None:
            try:
                reply = await self.execution.SubmitOrder(request, metadata=trader.auth)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    return None
                raise
            return reply.order

        return await eventually(answered)

    async def trade_seen(self, mesh: Mesh, trader: Trader) -> None:
        """Return once execution has taken a trade of the session's symbol.

        The closing auction crosses at the last trade execution saw, and a just-started
        execution may not have had one of the simulator's prints yet. So: a print at the
        bid, then a quote reaching a one-share limit placed below the market. A symbol's
        ticks are taken in order, so the limit's fill shows the print was taken first.
        Both are re-sent until then (a tick the simulator's sequence overtook is dropped).
        """
        quote = await mesh.quote(trader, self.symbol)
        limit = price(quote.bid, "0.95")
        probe = await self.submit(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
            qty="1",
            limit_price=str(limit),
        )

        async def filled() -> bool:
            sequence = await mesh.next_sequence(trader)
            await mesh.inject_trade(self.symbol, price(quote.bid, "1"), sequence)
            await mesh.inject_quote(self.symbol, limit - 3 * CENT, limit - CENT, sequence + 1)
            reply = await self.execution.GetOrder(
                execution_pb2.GetOrderRequest(order_id=probe.id), metadata=trader.auth
            )
            return reply.order.status == orders_pb2.ORDER_STATUS_FILLED

        await eventually(filled, interval_s=0.5)

    async def refusal(self, trader: Trader, **fields: object) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.submit(trader, **fields)
        return caught.value

    async def settled(
        self, trader: Trader, order_id: str
    ) -> tuple[orders_pb2.Order, list[orders_pb2.Fill]]:
        """The order once it has left the book, with its fills."""

        async def closed() -> execution_pb2.GetOrderResponse | None:
            reply = await self.execution.GetOrder(
                execution_pb2.GetOrderRequest(order_id=order_id), metadata=trader.auth
            )
            working = (orders_pb2.ORDER_STATUS_NEW, orders_pb2.ORDER_STATUS_ACCEPTED)
            return None if reply.order.status in working else reply

        reply = await eventually(closed)
        return reply.order, list(reply.fills)


@asynccontextmanager
async def paper_session(
    mesh: Mesh, tmp_path: Path, start: str, *, symbol: str = "KO", gateway: bool = False
) -> AsyncIterator[PaperSession]:
    """Market data on the nyse calendar from `start` ("" for the wall clock), execution,
    and with `gateway` an Envoy gateway in front of both (REST as users reach it)."""
    suffix = uuid.uuid4().hex[:8]
    ticks_topic = f"marketdata.ticks.auctions.{suffix}"
    bars_topic = f"marketdata.bars.auctions.{suffix}"
    # Its feed is off and its topics are its own: it serves instruments and the clock only.
    await ensure_topics(mesh.info.kafka_bootstrap, [ticks_topic, bars_topic], partitions=1)
    async with (
        own_database(mesh, "md_auctions") as marketdata_db,
        own_database(mesh, "exec_auctions") as execution_db,
    ):
        marketdata_settings = {
            "marketdata_feed": "none",
            "marketdata_calendar": "nyse",
            "marketdata_clock_start": start,
            "marketdata_ticks_topic": ticks_topic,
            "marketdata_bars_topic": bars_topic,
            "marketdata_ingest_group": f"marketdata-auctions-{suffix}",
        }
        marketdata = ServiceProcess(
            service_environ(mesh, "marketdata", marketdata_db, marketdata_settings),
            tmp_path / "marketdata.log",
            service="marketdata",
        )
        execution_settings = {
            "marketdata_addr": marketdata.address,
            "fill_engine_group": f"execution-auctions-{suffix}",
            "clock_poll_s": "0.2",
        }
        execution = ServiceProcess(
            service_environ(mesh, "execution", execution_db, execution_settings),
            tmp_path / "execution.log",
        )
        await marketdata.start()
        await execution.start()
        try:
            async with (
                grpc.aio.insecure_channel(execution.address) as to_execution,
                grpc.aio.insecure_channel(marketdata.address) as to_marketdata,
                AsyncExitStack() as stack,
            ):
                gateway_url = ""
                if gateway:
                    routes = {"execution": execution.address, "marketdata": marketdata.address}
                    gateway_url = await stack.enter_async_context(
                        own_gateway(mesh, tmp_path, routes)
                    )
                yield PaperSession(
                    marketdata,
                    execution_pb2_grpc.ExecutionServiceStub(to_execution),
                    marketdata_pb2_grpc.MarketDataServiceStub(to_marketdata),
                    symbol,
                    gateway_url,
                )
        finally:
            await execution.stop()
            await marketdata.stop()
