"""Auctions, extended hours and gtd through the gateway's REST API, on a moved nyse clock.

Each test runs a paper session (`paper_session.py`) with a gateway of its own in
front of its execution and market data processes, and uses a symbol no other test
trades. Where the outcome must not depend on the simulator's random walk, the test
injects the quote that decides it: an order priced 5 % away from the market rests
until that quote reaches it, and one tick then shows which orders may trade.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.integration.execution.exec_stack import CENT, Mesh, Trader, eventually, price
from tests.integration.execution.paper_session import PaperSession, at, paper_session
from tests.integration.execution.test_execution_order_classes import http

pytestmark = pytest.mark.integration

D = Decimal
WORKING = ("ORDER_STATUS_NEW", "ORDER_STATUS_ACCEPTED")


async def post_order(session: PaperSession, trader: Trader, **body: Any) -> tuple[int, Any]:
    """POST /v1/orders for the session's symbol; retried while execution cannot reach the
    market data process a clock move just restarted (HTTP 503, gRPC UNAVAILABLE)."""
    url = f"{session.gateway_url}/v1/orders"
    sent = {"symbol": session.symbol, **body}

    async def answered() -> tuple[int, Any] | None:
        status, reply = await asyncio.to_thread(http, "POST", url, trader.token, sent)
        return None if status == 503 else (status, reply)

    return await eventually(answered)


async def placed(session: PaperSession, trader: Trader, **body: Any) -> dict[str, Any]:
    status, reply = await post_order(session, trader, **body)
    assert status == 200, reply
    order: dict[str, Any] = reply["order"]
    assert order["status"] in WORKING
    return order


async def placed_at_market(
    mesh: Mesh, session: PaperSession, trader: Trader, **body: Any
) -> dict[str, Any]:
    """A market order placed as soon as risk holds a fresh quote of the session's symbol.

    The simulator quotes each symbol only every few seconds, and under the suite's load
    risk can be without one from the last 10 s when the session's first order arrives
    (refused NO_FRESH_QUOTE, which writes nothing); the market's own quote is then sent
    again, fresh, until the order is taken.
    """
    quote = await mesh.quote(trader, session.symbol)

    async def taken() -> dict[str, Any] | None:
        status, reply = await post_order(session, trader, **body)
        if status == 400 and "There is no quote for" in reply.get("message", ""):
            return None
        assert status == 200, reply
        return dict(reply["order"])

    order, _ = await mesh.quote_until(
        trader, session.symbol, Decimal(repr(quote.bid)), Decimal(repr(quote.ask)), taken
    )
    assert order["status"] in WORKING
    return order


async def read_order(session: PaperSession, trader: Trader, order_id: str) -> dict[str, Any]:
    """GET /v1/orders/{id}: the order and its fills."""
    url = f"{session.gateway_url}/v1/orders/{order_id}"
    status, reply = await asyncio.to_thread(http, "GET", url, trader.token)
    assert status == 200, reply
    return dict(reply)


async def settled(session: PaperSession, trader: Trader, order_id: str) -> dict[str, Any]:
    """The order, read through the gateway, once it has left the book."""

    async def closed() -> dict[str, Any] | None:
        reply = await read_order(session, trader, order_id)
        return None if reply["order"]["status"] in WORKING else reply

    return await eventually(closed)


async def quoted_until_settled(
    mesh: Mesh, session: PaperSession, trader: Trader, order_id: str, bid: Decimal, ask: Decimal
) -> dict[str, Any]:
    """Inject the quote that decides the order until it has left the book; the order then."""

    async def closed() -> dict[str, Any] | None:
        reply = await read_order(session, trader, order_id)
        return None if reply["order"]["status"] in WORKING else reply

    filled, _ = await mesh.quote_until(trader, session.symbol, bid, ask, closed, resend_after_s=0.5)
    return filled


async def auction_fill(
    session: PaperSession, trader: Trader, order_id: str, source: str, qty: int
) -> None:
    """The order filled whole, once, at its auction's print, as its explanation says."""
    crossed = await settled(session, trader, order_id)
    assert crossed["order"]["status"] == "ORDER_STATUS_FILLED"
    (fill,) = crossed["fills"]
    why = fill["explanation"]
    assert why["priceSource"] == source
    assert (D(fill["qty"]), D(fill["price"])) == (D(qty), D(why["tradePrice"]))


async def cutoff_refusal(session: PaperSession, trader: Trader, tif: str) -> dict[str, Any]:
    """An auction order after its cutoff: refused as the gRPC API refuses it."""
    status, reply = await post_order(
        session,
        trader,
        side="ORDER_SIDE_BUY",
        type="ORDER_TYPE_MARKET",
        timeInForce=tif,
        qty="1",
    )
    # FAILED_PRECONDITION (code 9) reads as HTTP 400, with the same message.
    assert (status, reply["code"]) == (400, 9), reply
    assert "cutoff has passed" in reply["message"]
    return dict(reply)


async def test_rest_opg_fills_at_the_opening_print_and_regular_orders_wait_for_the_open(
    mesh: Mesh, tmp_path: Path
) -> None:
    trader = await mesh.trader()
    async with paper_session(mesh, tmp_path, at("09:00:00"), symbol="DIS", gateway=True) as s:
        opg = await placed_at_market(
            mesh,
            s,
            trader,
            side="ORDER_SIDE_BUY",
            type="ORDER_TYPE_MARKET",
            timeInForce="TIME_IN_FORCE_OPG",
            qty="3",
        )
        # Pre-market: a regular and an extended-hours limit at the same price, both
        # below the market; one injected quote then reaches both.
        quote = await mesh.quote(trader, s.symbol)
        limit = price(quote.bid, "0.95")
        terms = {
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "timeInForce": "TIME_IN_FORCE_DAY",
            "qty": "2",
            "limitPrice": str(limit),
        }
        regular = await placed(s, trader, **terms)
        extended = await placed(s, trader, **terms, extendedHours=True)
        filled = await quoted_until_settled(
            mesh, s, trader, extended["id"], limit - 3 * CENT, limit - CENT
        )
        assert filled["order"]["status"] == "ORDER_STATUS_FILLED"
        assert [D(f["price"]) for f in filled["fills"]] == [limit - CENT]
        # The same tick reached the regular order, which waits for the open.
        waiting = await read_order(s, trader, regular["id"])
        assert (waiting["order"]["status"], waiting.get("fills", [])) == (
            "ORDER_STATUS_ACCEPTED",
            [],
        )

        # 09:28, two minutes before the open: the opening auction's cutoff.
        await s.move_clock(at("09:28:00"))
        await cutoff_refusal(s, trader, "TIME_IN_FORCE_OPG")

        # 09:30: the open. The first trade is the opening print; the waiting regular
        # order trades on the open's quotes (the injected one reaches it again).
        await s.move_clock(at("09:30:00"))
        await auction_fill(s, trader, opg["id"], "FILL_PRICE_SOURCE_OPENING_AUCTION", 3)

        # Re-sent until the open's phase has reached execution (its next clock poll).
        at_open = await quoted_until_settled(
            mesh, s, trader, regular["id"], limit - 3 * CENT, limit - CENT
        )
        assert at_open["order"]["status"] == "ORDER_STATUS_FILLED"
        assert [f["explanation"]["priceSource"] for f in at_open["fills"]] == [
            "FILL_PRICE_SOURCE_QUOTE"
        ]


async def test_rest_cls_fills_at_the_close_and_an_extended_limit_in_the_post_market(
    mesh: Mesh, tmp_path: Path
) -> None:
    trader = await mesh.trader()
    async with paper_session(mesh, tmp_path, at("15:00:00"), symbol="CVX", gateway=True) as s:
        cls = await placed_at_market(
            mesh,
            s,
            trader,
            side="ORDER_SIDE_BUY",
            type="ORDER_TYPE_MARKET",
            timeInForce="TIME_IN_FORCE_CLS",
            qty="5",
        )
        # The market, read before `trade_seen` injects its probe quote 5 % under it. Until
        # the simulator's next quote of the symbol arrives, the probe is the latest quote
        # (risk's market price too), so the post-market limit below must sit above the
        # market and within risk's 10 % band of the probe: 2.5 % above this quote is both.
        quote = await mesh.quote(trader, s.symbol)
        await s.move_clock(at("15:50:00"))
        await cutoff_refusal(s, trader, "TIME_IN_FORCE_CLS")
        await s.trade_seen(mesh, trader)

        # 16:00: the close crosses the cls order at the last trade execution saw.
        await s.move_clock(at("16:00:00"))
        await auction_fill(s, trader, cls["id"], "FILL_PRICE_SOURCE_CLOSING_AUCTION", 5)

        # The post-market (16:00-20:00): an extended-hours limit trades, a gtc one waits.
        limit = price(quote.ask, "1.025", up=True)
        terms = {"side": "ORDER_SIDE_SELL", "type": "ORDER_TYPE_LIMIT", "qty": "2"}
        gtc = await placed(
            s, trader, **terms, timeInForce="TIME_IN_FORCE_GTC", limitPrice=str(limit)
        )
        extended = await placed(
            s,
            trader,
            **terms,
            timeInForce="TIME_IN_FORCE_DAY",
            limitPrice=str(limit),
            extendedHours=True,
        )
        # The position the cls bought covers the sells; the quote reaches both limits.
        filled = await quoted_until_settled(
            mesh, s, trader, extended["id"], limit + CENT, limit + 3 * CENT
        )
        assert filled["order"]["status"] == "ORDER_STATUS_FILLED"
        assert [D(f["price"]) for f in filled["fills"]] == [limit + CENT], (limit, filled)
        waiting = await read_order(s, trader, gtc["id"])
        assert (waiting["order"]["status"], waiting.get("fills", [])) == (
            "ORDER_STATUS_ACCEPTED",
            [],
        )


async def test_rest_gtd_order_expires_when_the_market_clock_reaches_its_expire_at(
    mesh: Mesh, tmp_path: Path
) -> None:
    trader = await mesh.trader()
    # The market clock reads a Monday morning, a day or more from this host's clock.
    async with paper_session(mesh, tmp_path, at("10:00:00"), symbol="XOM", gateway=True) as s:
        quote = await mesh.quote(trader, s.symbol)
        market_now = (await s.market_clock()).timestamp
        expire_ns = (market_now.ToNanoseconds() // 1000 + 3_000_000) * 1000  # 3 s on
        expire_at = Timestamp()
        expire_at.FromNanoseconds(expire_ns)
        body = {
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "timeInForce": "TIME_IN_FORCE_GTD",
            "qty": "1",
            "limitPrice": str(price(quote.bid, "0.95")),  # never crosses
        }
        status, reply = await post_order(s, trader, **body)
        assert (status, reply["code"]) == (400, 3), reply  # INVALID_ARGUMENT: no expireAt
        assert "gtd needs expire_at" in reply["message"]

        gtd = await placed(s, trader, **body, expireAt=expire_at.ToJsonString())
        assert gtd["expireAt"] == expire_at.ToJsonString()
        expired = await settled(s, trader, gtd["id"])
        assert (expired["order"]["status"], expired.get("fills", [])) == (
            "ORDER_STATUS_EXPIRED",
            [],
        )
        stamp = Timestamp()
        stamp.FromJsonString(expired["order"]["expiredAt"])
        assert stamp.ToNanoseconds() >= expire_ns  # an instant of the market clock
