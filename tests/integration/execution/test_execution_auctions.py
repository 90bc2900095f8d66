"""Session terms against an nyse market clock: auctions, their cutoffs, extended hours, gtd.

The stack's market clock is always open, which has no auctions. These tests run a
paper session (`paper_session.py`): market data and execution processes of their
own, the market clock pinned to a Monday and moved by restarting market data.
Orders go through execution's gRPC API; nothing waits on a fixed delay
(`test_execution_sessions_rest.py` takes the same paths through the gateway).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cift.execution.v1 import execution_pb2, orders_pb2
from cift.marketdata.v1 import marketdata_pb2
from tests.integration.auth.auth_helpers import trailer
from tests.integration.execution.exec_stack import Mesh, price
from tests.integration.execution.paper_session import MONDAY, at, paper_session

pytestmark = pytest.mark.integration

D = Decimal
SYMBOL = "KO"


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
        # The last close was Friday's, 16:00 New York.
        assert clock.previous_close.ToJsonString() == "2026-12-04T21:00:00Z"

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
        await session.trade_seen(mesh, trader)

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
