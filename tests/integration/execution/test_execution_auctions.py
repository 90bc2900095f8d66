"""Session terms against an nyse market clock: auctions, their cutoffs, extended hours, gtd.

The stack's market clock is always open, which has no auctions. These tests run a
market data process of their own with the nyse calendar and its clock pinned by
`CIFT_MARKETDATA_CLOCK_START` to a Monday morning, and an execution process that
reads that clock (both with databases of their own; risk, auth and the simulator's
ticks are the stack's). Moving the clock is restarting market data with a later
start: execution keeps its book and sees the session open or close at its next poll.
Orders go through execution's gRPC API; nothing waits on a fixed delay.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.config import env_name
from cift.runtime.kafka import ensure_topics
from tests.integration.auth.auth_helpers import trailer
from tests.integration.execution.exec_stack import Mesh, Trader, eventually, price
from tests.integration.execution.processes import ServiceProcess, own_database, service_environ

pytestmark = pytest.mark.integration

D = Decimal
SYMBOL = "KO"
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
        request = execution_pb2.SubmitOrderRequest(symbol=SYMBOL, **fields)  # type: ignore[arg-type]

        async def answered() -> orders_pb2.Order | None:
            try:
                reply = await self.execution.SubmitOrder(request, metadata=trader.auth)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    return None
                raise
            return reply.order

        return await eventually(answered)

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
async def paper_session(mesh: Mesh, tmp_path: Path, start: str) -> AsyncIterator[PaperSession]:
    """Market data on the nyse calendar from `start` ("" for the wall clock), and execution."""
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
            ):
                yield PaperSession(
                    marketdata,
                    execution_pb2_grpc.ExecutionServiceStub(to_execution),
                    marketdata_pb2_grpc.MarketDataServiceStub(to_marketdata),
                )
        finally:
            await execution.stop()
            await marketdata.stop()


def is_pre_market(clock: marketdata_pb2.GetClockResponse) -> bool:
    """Whether the market clock reads 04:00-09:30 New York (UTC-05:00) on the test's Monday."""
    stamp = clock.timestamp.ToDatetime()
    minutes = (stamp.hour - 5) * 60 + stamp.minute
    return stamp.date().isoformat() == MONDAY and 4 * 60 <= minutes < 9 * 60 + 30


async def test_pre_market_takes_extended_hours_limits_and_opg_fills_at_the_opening_print(
    mesh: Mesh, tmp_path: Path
) -> None:
    trader = await mesh.trader()
    async with paper_session(mesh, tmp_path, at("08:00:00")) as session:
        clock = await session.market_clock()
        assert (clock.calendar, clock.is_open) == ("XNYS", False)
        assert is_pre_market(clock)

        # Pre-market: a marketable extended-hours limit day order fills on the quotes.
        quote = await mesh.quote(trader, SYMBOL)
        limit = price(quote.ask, "1.03", up=True)
        extended = await session.submit(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
            qty="2",
            limit_price=str(limit),
            extended_hours=True,
        )
        assert extended.extended_hours
        order, fills = await session.settled(trader, extended.id)
        assert order.status == orders_pb2.ORDER_STATUS_FILLED
        (fill,) = fills
        assert D(fill.qty) == D(2) and D(fill.price) <= limit
        assert fill.explanation.price_source == orders_pb2.FILL_PRICE_SOURCE_QUOTE
        assert is_pre_market(await session.market_clock())  # it filled before the open

        # Extended hours are for limit orders only.
        refused = await session.refusal(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_MARKET,
            time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
            qty="1",
            extended_hours=True,
        )
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "extended_hours applies to limit orders" in (refused.details() or "")

        # An opg order before the 09:28 cutoff waits for the opening auction.
        opg = await session.submit(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_MARKET,
            time_in_force=orders_pb2.TIME_IN_FORCE_OPG,
            qty="3",
        )
        assert opg.status in (orders_pb2.ORDER_STATUS_NEW, orders_pb2.ORDER_STATUS_ACCEPTED)

        # 09:28, the cutoff (two minutes before the open): a second one is refused.
        await session.move_clock(at("09:28:00"))
        late = await session.refusal(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_MARKET,
            time_in_force=orders_pb2.TIME_IN_FORCE_OPG,
            qty="1",
        )
        assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert trailer(late, "cift-reason") == "AUCTION_CUTOFF"
        assert "2 minutes before the open; the cutoff has passed" in (late.details() or "")
        waiting = await session.execution.GetOrder(
            execution_pb2.GetOrderRequest(order_id=opg.id), metadata=trader.auth
        )
        assert waiting.order.status == opg.status and not waiting.fills

        # 09:30: the session opens; the symbol's first trade is the opening print.
        await session.move_clock(at("09:30:00"))
        assert (await session.market_clock()).is_open
        order, fills = await session.settled(trader, opg.id)
        assert order.status == orders_pb2.ORDER_STATUS_FILLED
        (fill,) = fills  # a paper auction fills the whole order at one price
        why = fill.explanation
        assert why.price_source == orders_pb2.FILL_PRICE_SOURCE_OPENING_AUCTION
        assert (D(fill.qty), D(fill.price)) == (D(3), D(why.trade_price))
        assert why.tick_sequence > 0


async def test_cls_fills_at_the_sessions_last_trade_and_is_refused_after_its_cutoff(
    mesh: Mesh, tmp_path: Path
) -> None:
    trader = await mesh.trader()
    async with paper_session(mesh, tmp_path, at("15:00:00")) as session:
        assert (await session.market_clock()).is_open
        cls = await session.submit(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_MARKET,
            time_in_force=orders_pb2.TIME_IN_FORCE_CLS,
            qty="5",
        )
        # A day order that never crosses expires at the same close.
        quote = await mesh.quote(trader, SYMBOL)
        day = await session.submit(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
            qty="1",
            limit_price=str(price(quote.bid, "0.92")),
        )

        # 15:50, the cutoff (ten minutes before the close): a cls order is refused.
        await session.move_clock(at("15:50:00"))
        late = await session.refusal(
            trader,
            side=orders_pb2.ORDER_SIDE_SELL,
            type=orders_pb2.ORDER_TYPE_MARKET,
            time_in_force=orders_pb2.TIME_IN_FORCE_CLS,
            qty="1",
        )
        assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert trailer(late, "cift-reason") == "AUCTION_CUTOFF"
        assert "10 minutes before the close; the cutoff has passed" in (late.details() or "")

        # 16:00: the close runs the closing auction at the last trade execution saw.
        await session.move_clock(at("16:00:00"))
        assert not (await session.market_clock()).is_open
        order, fills = await session.settled(trader, cls.id)
        assert order.status == orders_pb2.ORDER_STATUS_FILLED
        (fill,) = fills
        why = fill.explanation
        assert why.price_source == orders_pb2.FILL_PRICE_SOURCE_CLOSING_AUCTION
        assert (D(fill.qty), D(fill.price)) == (D(5), D(why.trade_price))
        assert why.tick_sequence > 0
        expired, no_fills = await session.settled(trader, day.id)
        assert (expired.status, no_fills) == (orders_pb2.ORDER_STATUS_EXPIRED, [])


async def test_gtd_order_expires_at_its_expire_at(mesh: Mesh, tmp_path: Path) -> None:
    trader = await mesh.trader()
    async with paper_session(mesh, tmp_path, "") as session:
        quote = await mesh.quote(trader, SYMBOL)
        expire_at = Timestamp()
        # Five seconds on, in microseconds: the precision the order's row keeps.
        expire_at.FromMicroseconds(time.time_ns() // 1000 + 5_000_000)
        gtd = await session.submit(
            trader,
            side=orders_pb2.ORDER_SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_GTD,
            qty="1",
            limit_price=str(price(quote.bid, "0.92")),  # never crosses
            expire_at=expire_at,
        )
        assert gtd.expire_at == expire_at
        order, fills = await session.settled(trader, gtd.id)
        assert (order.status, fills) == (orders_pb2.ORDER_STATUS_EXPIRED, [])
        assert order.expired_at.ToNanoseconds() >= expire_at.ToNanoseconds()
