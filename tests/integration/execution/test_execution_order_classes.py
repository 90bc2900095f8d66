"""Bracket, OCO and OTO orders through the real mesh: gRPC, and REST through the gateway.

Each test uses a symbol of its own and injects the quote that moves its exits, so
the simulator's random walk (far from exits 8 % away) does not decide the outcome.
"""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import grpc
import pytest

from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.marketdata.v1 import marketdata_pb2
from cift.risk.v1 import risk_pb2, rules_pb2
from tests.integration.auth.auth_helpers import trailer
from tests.integration.execution.exec_stack import (
    CENT,
    Mesh,
    Trader,
    eventually,
    price,
    rpc_error,
)
from tests.integration.execution.processes import ServiceProcess
from tests.integration.execution.test_execution_restart import (  # noqa: F401 (fixture)
    execution_process,
)

pytestmark = pytest.mark.integration

D = Decimal
BUY, SELL = orders_pb2.ORDER_SIDE_BUY, orders_pb2.ORDER_SIDE_SELL
S = orders_pb2


def bracket_request(
    symbol: str, limit: Decimal, take: Decimal, stop: Decimal, qty: str = "10"
) -> execution_pb2.SubmitOrderRequest:
    return execution_pb2.SubmitOrderRequest(
        symbol=symbol,
        side=BUY,
        type=S.ORDER_TYPE_LIMIT,
        time_in_force=S.TIME_IN_FORCE_GTC,
        qty=qty,
        limit_price=str(limit),
        order_class=S.ORDER_CLASS_BRACKET,
        take_profit=execution_pb2.TakeProfit(limit_price=str(take)),
        stop_loss=execution_pb2.StopLoss(stop_price=str(stop)),
    )


def oco_request(
    symbol: str, qty: str, quote: marketdata_pb2.Quote
) -> execution_pb2.SubmitOrderRequest:
    """An OCO closing a long position: take profit 8 % above the ask, stop 8 % below the bid."""
    return execution_pb2.SubmitOrderRequest(
        symbol=symbol,
        side=SELL,
        type=S.ORDER_TYPE_LIMIT,
        time_in_force=S.TIME_IN_FORCE_GTC,
        qty=qty,
        order_class=S.ORDER_CLASS_OCO,
        take_profit=execution_pb2.TakeProfit(limit_price=str(price(quote.ask, "1.08", up=True))),
        stop_loss=execution_pb2.StopLoss(stop_price=str(price(quote.bid, "0.92"))),
    )


async def status_of(execution: Any, trader: Trader, order_id: str, wanted: int) -> orders_pb2.Order:
    async def reached() -> orders_pb2.Order | None:
        reply = await execution.GetOrder(
            execution_pb2.GetOrderRequest(order_id=order_id), metadata=trader.auth
        )
        return reply.order if reply.order.status == wanted else None

    return await eventually(reached)


async def test_bracket_entry_fills_releases_exits_and_the_take_profit_cancels_the_stop(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    quote = await mesh.quote(trader, "ADBE")
    limit = price(quote.ask, "1.02", up=True)
    take, stop = price(quote.ask, "1.08", up=True), price(quote.bid, "0.92")
    placed = (
        await mesh.execution.SubmitOrder(
            bracket_request("ADBE", limit, take, stop), metadata=trader.auth
        )
    ).order
    assert placed.order_class == S.ORDER_CLASS_BRACKET
    assert [leg.type for leg in placed.legs] == [S.ORDER_TYPE_LIMIT, S.ORDER_TYPE_STOP]
    assert all(leg.parent_order_id == placed.id for leg in placed.legs)

    entry = await status_of(mesh.execution, trader, placed.id, S.ORDER_STATUS_FILLED)
    tp_id, sl_id = (leg.id for leg in placed.legs)
    for leg_id in (tp_id, sl_id):
        leg = await status_of(mesh.execution, trader, leg_id, S.ORDER_STATUS_ACCEPTED)
        assert D(leg.qty) == 10 and leg.side == SELL
    account = await mesh.account(trader)
    assert D(account.reserved_buying_power) == 0  # exits reserve nothing

    async def take_profit_filled() -> orders_pb2.Order | None:
        leg = await mesh.order(trader, tp_id)
        return leg if leg.status == S.ORDER_STATUS_FILLED else None

    sold, sequences = await mesh.quote_until(trader, "ADBE", take, take + CENT, take_profit_filled)
    canceled = await status_of(mesh.execution, trader, sl_id, S.ORDER_STATUS_CANCELED)
    assert D(sold.filled_avg_price) >= take
    assert D(canceled.filled_qty) == 0
    positions = (
        await mesh.execution.ListPositions(
            execution_pb2.ListPositionsRequest(), metadata=trader.auth
        )
    ).positions
    assert "ADBE" not in {p.symbol for p in positions}
    got = await mesh.execution.GetOrder(
        execution_pb2.GetOrderRequest(order_id=entry.id), metadata=trader.auth
    )
    assert {leg.status for leg in got.order.legs} == {
        S.ORDER_STATUS_FILLED,
        S.ORDER_STATUS_CANCELED,
    }
    # The parent's reply lists the fills of the entry and of its legs, each explained:
    # the take-profit's by the quote injected above.
    assert {fill.order_id for fill in got.fills} == {entry.id, tp_id}
    exit_fill = next(fill for fill in got.fills if fill.order_id == tp_id)
    assert exit_fill.explanation.tick_sequence in sequences  # the quote that filled it
    assert D(exit_fill.explanation.bid) == take == D(exit_fill.explanation.market_price)
    assert all(fill.explanation.tick_sequence > 0 for fill in got.fills)


async def test_bad_brackets_are_invalid_arguments_naming_the_rule_and_write_nothing(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    quote = await mesh.quote(trader, "CSCO")
    limit = price(quote.bid, "0.95")
    below = await rpc_error(
        mesh.execution.SubmitOrder(
            bracket_request("CSCO", limit, limit - CENT, limit - 10 * CENT), metadata=trader.auth
        )
    )
    assert below.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "take_profit.limit_price" in (below.details() or "")
    assert "must be above the entry price" in (below.details() or "")
    above = await rpc_error(
        mesh.execution.SubmitOrder(
            bracket_request("CSCO", limit, limit + CENT, limit + CENT), metadata=trader.auth
        )
    )
    assert "stop_loss.stop_price" in (above.details() or "")
    assert await mesh.orders(trader) == []


async def test_oco_needs_a_position_to_close_and_oto_releases_one_exit(mesh: Mesh) -> None:
    trader = await mesh.trader()
    quote = await mesh.quote(trader, "PEP")
    oco = oco_request("PEP", "5", quote)
    refused = await rpc_error(mesh.execution.SubmitOrder(oco, metadata=trader.auth))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "closes a position" in (refused.details() or "")

    oto = execution_pb2.SubmitOrderRequest(
        symbol="PEP",
        side=BUY,
        type=S.ORDER_TYPE_LIMIT,
        time_in_force=S.TIME_IN_FORCE_GTC,
        qty="5",
        limit_price=str(price(quote.ask, "1.02", up=True)),
        order_class=S.ORDER_CLASS_OTO,
        stop_loss=execution_pb2.StopLoss(trail_percent="5"),
    )
    entry = (await mesh.execution.SubmitOrder(oto, metadata=trader.auth)).order
    (leg,) = entry.legs
    assert leg.type == S.ORDER_TYPE_TRAILING_STOP
    await status_of(mesh.execution, trader, leg.id, S.ORDER_STATUS_ACCEPTED)

    # Now the account holds 5 PEP: the OCO closes it; its sibling works at once.
    placed = (await mesh.execution.SubmitOrder(oco, metadata=trader.auth)).order
    assert placed.legs[0].status == S.ORDER_STATUS_ACCEPTED
    # Closing the position first cancels the exits that would reduce it.
    await mesh.execution.ClosePosition(
        execution_pb2.ClosePositionRequest(symbol="PEP"), metadata=trader.auth
    )
    for order_id in (placed.id, placed.legs[0].id, leg.id):
        await status_of(mesh.execution, trader, order_id, S.ORDER_STATUS_CANCELED)


def http(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


async def test_rest_bracket_through_the_gateway_and_parent_cancel_cancels_its_legs(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    base = mesh.info.gateway_url
    assert base is not None
    quote = await mesh.quote(trader, "COST")
    limit = price(quote.bid, "0.95")
    body: dict[str, Any] = {
        "symbol": "COST",
        "side": "ORDER_SIDE_BUY",
        "type": "ORDER_TYPE_LIMIT",
        "timeInForce": "TIME_IN_FORCE_DAY",
        "qty": "3",
        "limitPrice": str(limit),
        "orderClass": "ORDER_CLASS_BRACKET",
        "takeProfit": {"limitPrice": str(limit - CENT)},
        "stopLoss": {"stopPrice": str(limit - 10 * CENT)},
    }
    status, reply = await asyncio.to_thread(http, "POST", f"{base}/v1/orders", trader.token, body)
    assert status == 400 and "bracket rule" in reply["message"]

    body["takeProfit"] = {"limitPrice": str(price(quote.ask, "1.08", up=True))}
    status, reply = await asyncio.to_thread(http, "POST", f"{base}/v1/orders", trader.token, body)
    assert status == 200, reply
    order = reply["order"]
    assert order["orderClass"] == "ORDER_CLASS_BRACKET"
    assert [leg["status"] for leg in order["legs"]] == ["ORDER_STATUS_HELD"] * 2
    assert {leg["parentOrderId"] for leg in order["legs"]} == {order["id"]}

    status, _ = await asyncio.to_thread(
        http, "DELETE", f"{base}/v1/orders/{order['id']}", trader.token
    )
    assert status == 200
    status, reply = await asyncio.to_thread(
        http, "GET", f"{base}/v1/orders/{order['id']}", trader.token
    )
    assert reply["order"]["status"] == "ORDER_STATUS_CANCELED"
    assert [leg["status"] for leg in reply["order"]["legs"]] == ["ORDER_STATUS_CANCELED"] * 2
    assert D((await mesh.account(trader)).reserved_buying_power) == 0


async def test_bracket_legs_survive_a_restart_and_still_trigger(
    mesh: Mesh,
    execution_process: ServiceProcess,  # noqa: F811
) -> None:
    trader = await mesh.trader()
    async with grpc.aio.insecure_channel(execution_process.address) as channel:
        execution = execution_pb2_grpc.ExecutionServiceStub(channel)
        quote = await mesh.quote(trader, "QCOM")
        limit = price(quote.ask, "1.02", up=True)
        take, stop = price(quote.ask, "1.08", up=True), price(quote.bid, "0.92")
        placed = (
            await execution.SubmitOrder(
                bracket_request("QCOM", limit, take, stop, qty="4"), metadata=trader.auth
            )
        ).order
        await status_of(execution, trader, placed.id, S.ORDER_STATUS_FILLED)
        tp_id, sl_id = (leg.id for leg in placed.legs)
        await status_of(execution, trader, sl_id, S.ORDER_STATUS_ACCEPTED)

        assert await execution_process.stop() == 0
        await execution_process.start()

        # The market keeps quoting at the take-profit (a consumer still joining after the
        # restart may start after the first such quote).
        async def take_profit_filled() -> orders_pb2.Order | None:
            reply = await execution.GetOrder(
                execution_pb2.GetOrderRequest(order_id=tp_id), metadata=trader.auth
            )
            return reply.order if reply.order.status == S.ORDER_STATUS_FILLED else None

        await mesh.quote_until(
            trader, "QCOM", take, take + CENT, take_profit_filled, resend_after_s=0.5
        )
        await status_of(execution, trader, sl_id, S.ORDER_STATUS_CANCELED)


def grpc_web_call(url: str, token: str, message: bytes) -> tuple[bytes, dict[str, str]]:
    """One unary gRPC-Web call: the reply message and the trailers."""
    request = urllib.request.Request(
        url,
        method="POST",
        data=struct.pack(">BI", 0, len(message)) + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {token}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        body = reply.read()
    payload, trailers = b"", {}
    while body:
        flag, length = struct.unpack(">BI", body[:5])
        frame, body = body[5 : 5 + length], body[5 + length :]
        if flag & 0x80:
            for line in frame.decode().strip().split("\r\n"):
                name, _, value = line.partition(":")
                trailers[name.strip().lower()] = value.strip()
        else:
            payload = frame
    return payload, trailers


async def test_grpc_web_places_a_bracket(mesh: Mesh) -> None:
    trader = await mesh.trader()
    base = mesh.info.gateway_url
    assert base is not None
    quote = await mesh.quote(trader, "AVGO")
    limit = price(quote.bid, "0.95")
    request = bracket_request("AVGO", limit, price(quote.ask, "1.08", up=True), limit - CENT)
    payload, trailers = await asyncio.to_thread(
        grpc_web_call,
        f"{base}/cift.execution.v1.ExecutionService/SubmitOrder",
        trader.token,
        request.SerializeToString(),
    )
    assert trailers.get("grpc-status") == "0", trailers
    order = execution_pb2.SubmitOrderResponse.FromString(payload).order
    assert order.order_class == S.ORDER_CLASS_BRACKET
    assert [leg.status for leg in order.legs] == [S.ORDER_STATUS_HELD] * 2
    # Cancel-all reaches the parent first; its legs go with it and count as canceled.
    reply = await mesh.execution.CancelAllOrders(
        execution_pb2.CancelAllOrdersRequest(), metadata=trader.auth
    )
    assert {c.order_id for c in reply.cancellations} == {order.id, *(leg.id for leg in order.legs)}
    assert all(c.canceled for c in reply.cancellations)
    assert {c.order.status for c in reply.cancellations} == {S.ORDER_STATUS_CANCELED}


async def test_a_halted_or_reducing_account_may_still_place_an_oco_exit(mesh: Mesh) -> None:
    trader = await mesh.trader()
    admin = await mesh.admin()
    quote = await mesh.quote(trader, "MRK")
    bought = await mesh.submit(
        trader,
        symbol="MRK",
        type=S.ORDER_TYPE_MARKET,
        time_in_force=S.TIME_IN_FORCE_DAY,
        qty="6",
    )
    assert (await mesh.settled(trader, bought.id)).status == S.ORDER_STATUS_FILLED
    oco = oco_request("MRK", "6", quote)
    more = execution_pb2.SubmitOrderRequest(
        symbol="MRK",
        side=BUY,
        type=S.ORDER_TYPE_LIMIT,
        time_in_force=S.TIME_IN_FORCE_GTC,
        qty="1",
        limit_price=str(price(quote.bid, "0.95")),
    )
    for state, reason in (
        (rules_pb2.TRADING_STATE_HALTED, "ACCOUNT_HALTED"),
        (rules_pb2.TRADING_STATE_REDUCING, "ACCOUNT_REDUCING_ONLY"),
    ):
        await mesh.risk.SetTradingState(
            risk_pb2.SetTradingStateRequest(account_id=trader.account_id, state=state),
            metadata=admin.auth,
        )
        # The state is in force: an order that would add to the position is refused.
        refused = await rpc_error(mesh.execution.SubmitOrder(more, metadata=trader.auth))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert trailer(refused, "cift-reason") == reason
        # The exits that close the position are still accepted, both legs working.
        placed = (await mesh.execution.SubmitOrder(oco, metadata=trader.auth)).order
        assert placed.status == S.ORDER_STATUS_ACCEPTED
        assert [leg.status for leg in placed.legs] == [S.ORDER_STATUS_ACCEPTED]
        await mesh.execution.CancelOrder(
            execution_pb2.CancelOrderRequest(order_id=placed.id), metadata=trader.auth
        )
        await status_of(mesh.execution, trader, placed.legs[0].id, S.ORDER_STATUS_CANCELED)
    await mesh.risk.SetTradingState(
        risk_pb2.SetTradingStateRequest(
            account_id=trader.account_id, state=rules_pb2.TRADING_STATE_ACTIVE
        ),
        metadata=admin.auth,
    )
