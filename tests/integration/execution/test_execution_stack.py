"""The execution service through its gRPC API with the real auth, risk and market data services.

Everything runs in the session's `stack` (every service as its own process, its
own PostgreSQL, Redis and Kafka-protocol broker). Each test registers fresh users
through auth and uses its own symbol where it injects prices, so tests neither
share accounts nor disturb each other's books.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

import grpc
import pytest

from cift.execution.v1 import events_pb2, execution_pb2, orders_pb2
from cift.risk.v1 import risk_pb2
from cift.runtime.kafka import TOPIC_FILLS
from cift.trading.intraday import NS_PER_DAY
from tests.consumers import consumer as consumer_for
from tests.integration.auth.auth_helpers import trailer
from tests.integration.execution.exec_stack import (
    CENT,
    Mesh,
    Trader,
    eventually,
    price,
    rpc_error,
)

pytestmark = pytest.mark.integration

D = Decimal
BUY, SELL = orders_pb2.ORDER_SIDE_BUY, orders_pb2.ORDER_SIDE_SELL
OPEN_STATUSES = (
    orders_pb2.ORDER_STATUS_NEW,
    orders_pb2.ORDER_STATUS_ACCEPTED,
    orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
)


async def test_submit_fill_position_and_account_agree_to_the_cent(mesh: Mesh) -> None:
    trader = await mesh.trader()
    opening = D((await mesh.account(trader)).cash)
    quote = await mesh.quote(trader, "MSFT")
    # Marketable limits (inside the 10% collar) fill on the simulator's next quotes.
    limit = price(quote.ask, "1.02", up=True)
    bought = await mesh.submit(trader, symbol="MSFT", qty="10", limit_price=str(limit))
    bought = await mesh.settled(trader, bought.id)
    assert bought.status == orders_pb2.ORDER_STATUS_FILLED
    paid = D(bought.filled_avg_price)
    assert paid <= limit and paid == paid.quantize(CENT)

    quote = await mesh.quote(trader, "MSFT")
    sold = await mesh.submit(
        trader,
        symbol="MSFT",
        side=SELL,
        qty="4",
        limit_price=str(price(quote.bid, "0.98")),
    )
    sold = await mesh.settled(trader, sold.id)
    assert sold.status == orders_pb2.ORDER_STATUS_FILLED
    received = D(sold.filled_avg_price)

    position = (
        await mesh.execution.GetPosition(
            execution_pb2.GetPositionRequest(symbol="MSFT"), metadata=trader.auth
        )
    ).position
    assert D(position.qty) == 6
    assert D(position.avg_entry_price) == paid
    assert D(position.cost_basis) == 6 * paid
    assert D(position.realized_pl) == 4 * (received - paid)

    account = await mesh.account(trader)
    assert D(account.cash) == opening - 10 * paid + 4 * received
    assert D(account.realized_pl) == 4 * (received - paid)
    assert D(account.reserved_buying_power) == 0
    activities = (
        await mesh.execution.ListActivities(
            execution_pb2.ListActivitiesRequest(), metadata=trader.auth
        )
    ).activities
    assert sum(D(a.net_amount) for a in activities) == D(account.cash)
    assert sorted(D(a.net_amount) for a in activities) == sorted(
        [opening, -10 * paid, 4 * received]
    )


async def test_a_fractionable_symbol_fills_half_a_share_and_a_whole_share_one_refuses_it(
    mesh: Mesh,
) -> None:
    # Market data lists each lot as its minimum order size; fractionable still means
    # fractional quantities, at execution as at risk.
    trader = await mesh.trader()
    opening = D((await mesh.account(trader)).cash)
    quote = await mesh.quote(trader, "AAPL")
    limit = price(quote.ask, "1.02", up=True)
    half = await mesh.submit(trader, symbol="AAPL", qty="0.5", limit_price=str(limit))
    half = await mesh.settled(trader, half.id)
    assert half.status == orders_pb2.ORDER_STATUS_FILLED
    assert D(half.filled_qty) == D("0.5")
    cost = (D("0.5") * D(half.filled_avg_price)).quantize(CENT, ROUND_HALF_UP)
    account = await mesh.account(trader)
    assert D(account.cash) == opening - cost
    assert D(account.reserved_buying_power) == 0

    error = await rpc_error(mesh.submit(trader, symbol="SNDL", qty="0.5", limit_price="0.80"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SNDL does not trade in fractional shares" in (error.details() or "")


async def test_a_position_bought_today_reports_its_change_since_the_previous_daily_close(
    mesh: Mesh,
) -> None:
    """lastday_price is the close of market data's last 1Day bar before today (UTC days).

    The stack's simulator started today, so yesterday's bar is written here, before
    anyone asks execution about the symbol (it remembers a close for the whole day).
    """
    trader = await mesh.trader()
    symbol = "JNJ"  # no other execution test holds it
    quote = await mesh.quote(trader, symbol)
    lastday = price(quote.bid, "0.97")
    now = time.time_ns()
    yesterday = now - now % NS_PER_DAY - NS_PER_DAY
    await mesh.db.execute(
        """INSERT INTO marketdata.bars (symbol, timeframe, start_ns, open, high, low, close,
                                        volume, notional, trade_count, closed)
        VALUES ($1, '1Day', $2, $3, $3, $3, $3, 1, $3, 1, true)""",
        symbol,
        yesterday,
        float(lastday),
    )
    bought = await mesh.submit(
        trader, symbol=symbol, qty="3", limit_price=str(price(quote.ask, "1.02", up=True))
    )
    assert (await mesh.settled(trader, bought.id)).status == orders_pb2.ORDER_STATUS_FILLED

    position = (
        await mesh.execution.GetPosition(
            execution_pb2.GetPositionRequest(symbol=symbol), metadata=trader.auth
        )
    ).position
    assert D(position.lastday_price) == lastday
    assert D(position.change_today) == (D(position.current_price) / lastday - 1).quantize(
        D("0.000001")
    )
    # Every share was bought today: all of its unrealized P&L is today's.
    assert position.unrealized_intraday_pl == position.unrealized_pl
    listed = (
        await mesh.execution.ListPositions(
            execution_pb2.ListPositionsRequest(), metadata=trader.auth
        )
    ).positions
    assert [(p.symbol, p.lastday_price) for p in listed] == [(symbol, position.lastday_price)]


async def test_fifty_concurrent_orders_of_ten_percent_each_accept_exactly_ten(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    buying_power = D((await mesh.account(trader)).buying_power)
    quote = await mesh.quote(trader, "NVDA")
    limit = price(quote.bid, "0.95")  # rests: the point is the reservation, not a fill
    qty = (buying_power / 10 / limit).to_integral_value(ROUND_DOWN)

    results = await asyncio.gather(
        *(
            mesh.submit(trader, symbol="NVDA", qty=str(qty), limit_price=str(limit))
            for _ in range(50)
        ),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, orders_pb2.Order)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) + len(refused) == 50
    assert len(accepted) == 10
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert {trailer(e, "cift-reason") for e in refused} == {"INSUFFICIENT_BUYING_POWER"}

    account = await mesh.account(trader)
    assert D(account.buying_power) >= 0
    assert D(account.reserved_buying_power) == 10 * qty * limit
    assert {o.id for o in await mesh.orders(trader)} == {o.id for o in accepted}
    await mesh.execution.CancelAllOrders(
        execution_pb2.CancelAllOrdersRequest(), metadata=trader.auth
    )
    assert D((await mesh.account(trader)).reserved_buying_power) == 0


BAD_ORDERS: list[tuple[str, dict[str, Any]]] = [
    ("unknown symbol", {"symbol": "NOPEZZ", "qty": "1", "limit_price": "10.00"}),
    ("zero qty", {"qty": "0", "limit_price": "100.00"}),
    ("negative qty", {"qty": "-5", "limit_price": "100.00"}),
    ("NaN qty", {"qty": "NaN", "limit_price": "100.00"}),
    ("limit price missing", {"qty": "1"}),
    ("limit price off the tick grid", {"qty": "1", "limit_price": "100.005"}),
    ("notional with a limit order", {"notional": "500", "limit_price": "100.00"}),
]


async def test_bad_orders_are_invalid_arguments_and_write_nothing(mesh: Mesh) -> None:
    trader = await mesh.trader()
    before = await mesh.account(trader)
    for what, fields in BAD_ORDERS:
        fields = {"symbol": "AAPL", **fields}
        error = await rpc_error(mesh.submit(trader, **fields))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert error.details(), what
    after = await mesh.account(trader)
    assert (after.cash, after.reserved_buying_power) == (before.cash, before.reserved_buying_power)
    assert await mesh.orders(trader) == []
    written = await mesh.db.fetchval(
        "SELECT count(*) FROM execution.order_events WHERE account_id = $1", trader.account_id
    )
    assert written == 0


async def test_cancel_of_another_users_order_is_not_found_and_leaves_it_working(
    mesh: Mesh,
) -> None:
    owner, intruder = await mesh.trader(), await mesh.trader()
    quote = await mesh.quote(owner, "AAPL")
    order = await mesh.submit(
        owner, symbol="AAPL", qty="1", limit_price=str(price(quote.bid, "0.95"))
    )
    error = await rpc_error(
        mesh.execution.CancelOrder(
            execution_pb2.CancelOrderRequest(order_id=order.id), metadata=intruder.auth
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await mesh.order(owner, order.id)).status == orders_pb2.ORDER_STATUS_ACCEPTED
    unknown = await rpc_error(
        mesh.execution.CancelOrder(
            execution_pb2.CancelOrderRequest(order_id=str(uuid.uuid4())), metadata=owner.auth
        )
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_replace_of_a_filled_order_is_refused_and_writes_nothing(mesh: Mesh) -> None:
    trader = await mesh.trader()
    quote = await mesh.quote(trader, "AAPL")
    order = await mesh.submit(
        trader, symbol="AAPL", qty="1", limit_price=str(price(quote.ask, "1.02", up=True))
    )
    filled = await mesh.settled(trader, order.id)
    assert filled.status == orders_pb2.ORDER_STATUS_FILLED
    cash = (await mesh.account(trader)).cash
    error = await rpc_error(
        mesh.execution.ReplaceOrder(
            execution_pb2.ReplaceOrderRequest(order_id=order.id, qty="2"), metadata=trader.auth
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [o.id for o in await mesh.orders(trader)] == [order.id]
    assert (await mesh.order(trader, order.id)).status == orders_pb2.ORDER_STATUS_FILLED
    assert (await mesh.account(trader)).cash == cash


async def ledger_matches_fills(mesh: Mesh, trader: Trader, symbol: str, opening: Decimal) -> None:
    """Position, cash and every order's filled quantity equal what the fills table says."""
    fills = await mesh.db.fetch(
        "SELECT order_id, side, qty, price FROM execution.fills WHERE account_id = $1",
        trader.account_id,
    )
    bought = sum((f["qty"] for f in fills if f["side"] == "buy"), D(0))
    sold = sum((f["qty"] for f in fills if f["side"] == "sell"), D(0))
    spent = sum((f["qty"] * f["price"] for f in fills if f["side"] == "buy"), D(0))
    got = sum((f["qty"] * f["price"] for f in fills if f["side"] == "sell"), D(0))
    account = await mesh.account(trader)
    assert D(account.cash) == opening - spent + got
    positions = (
        await mesh.execution.ListPositions(
            execution_pb2.ListPositionsRequest(), metadata=trader.auth
        )
    ).positions
    held = {p.symbol: D(p.qty) for p in positions}
    assert held.get(symbol, D(0)) == bought - sold
    for order in await mesh.orders(trader):
        mine = sum((f["qty"] for f in fills if f["order_id"] == order.id), D(0))
        assert D(order.filled_qty or "0") == mine


async def test_cancels_and_replaces_racing_a_crossing_quote_leave_one_consistent_outcome(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    opening = D((await mesh.account(trader)).cash)
    quote = await mesh.quote(trader, "AMZN")
    limit = price(quote.bid, "0.97")
    orders = [
        await mesh.submit(trader, symbol="AMZN", qty="3", limit_price=str(limit)) for _ in range(6)
    ]
    sequence = await mesh.next_sequence(trader)

    async def cancel(order_id: str) -> Any:
        return await mesh.execution.CancelOrder(
            execution_pb2.CancelOrderRequest(order_id=order_id), metadata=trader.auth
        )

    async def replace(order_id: str) -> Any:
        return await mesh.execution.ReplaceOrder(
            execution_pb2.ReplaceOrderRequest(order_id=order_id, qty="4"), metadata=trader.auth
        )

    # One quote whose ask crosses every order races three cancels and three replaces.
    outcomes = await asyncio.gather(
        mesh.inject_quote("AMZN", limit - CENT, limit, sequence),
        *(cancel(o.id) for o in orders[:3]),
        *(replace(o.id) for o in orders[3:]),
        return_exceptions=True,
    )
    for outcome in outcomes[1:]:
        if isinstance(outcome, grpc.aio.AioRpcError):
            # Only a fill may beat a cancel or replace, and then they say so.
            assert outcome.code() == grpc.StatusCode.FAILED_PRECONDITION, outcome.details()
    await asyncio.sleep(1.0)
    for order in orders:
        final = await mesh.order(trader, order.id)
        assert final.status in (
            orders_pb2.ORDER_STATUS_FILLED,
            orders_pb2.ORDER_STATUS_CANCELED,
            orders_pb2.ORDER_STATUS_REPLACED,
        )
        if final.status == orders_pb2.ORDER_STATUS_FILLED:
            assert D(final.filled_qty) == 3 and D(final.filled_avg_price) <= limit
        if final.status == orders_pb2.ORDER_STATUS_REPLACED:
            successor = await mesh.order(trader, final.replaced_by)
            assert successor.replaces == order.id and D(successor.qty) == 4
    await mesh.execution.CancelAllOrders(
        execution_pb2.CancelAllOrdersRequest(), metadata=trader.auth
    )
    await ledger_matches_fills(mesh, trader, "AMZN", opening)
    assert D((await mesh.account(trader)).reserved_buying_power) == 0


async def fill_events(mesh: Mesh, order_ids: set[str]) -> list[Any]:
    """The FillEvents of `order_ids` as they went out on execution.fills.v1."""
    found: dict[str, Any] = {}
    consumer = consumer_for(
        mesh.info, f"execution-tests-{uuid.uuid4().hex[:8]}", [TOPIC_FILLS], from_beginning=True
    )
    await consumer.start()

    async def handle(events: list[Any]) -> None:
        for event in events:
            message = event.message
            if isinstance(message, events_pb2.FillEvent) and message.fill.order_id in order_ids:
                found[message.fill.order_id] = event

    task = asyncio.create_task(consumer.run(handle))
    try:
        await eventually(lambda: asyncio.sleep(0, len(found) == len(order_ids)))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
    return [found[i] for i in sorted(order_ids)]


async def test_a_replayed_tick_fills_nothing_and_a_replayed_fill_moves_no_position(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    quote = await mesh.quote(trader, "GOOGL")
    limit = price(quote.bid, "0.97")
    first = await mesh.submit(trader, symbol="GOOGL", qty="10", limit_price=str(limit))

    async def filled(order_id: str) -> orders_pb2.Order | None:
        order = await mesh.order(trader, order_id)
        return order if order.status == orders_pb2.ORDER_STATUS_FILLED else None

    _, sent = await mesh.quote_until(trader, "GOOGL", limit - CENT, limit, lambda: filled(first.id))
    # The newest crossing quote sent: taken, or dropped as overtaken; either way its
    # sequence is at or below the mark execution keeps, as a redelivery's would be.
    sequence = sent[-1]

    # The market moves away (a newer tick), a second order rests, then the crossing tick
    # arrives again (same sequence, as a redelivery after a rebalance would bring it):
    # it must not fill the new order.
    later = max(await mesh.next_sequence(trader), sequence + 1)
    await mesh.inject_quote("GOOGL", limit + CENT, limit + 50 * CENT, later)
    await asyncio.sleep(1.0)  # consumed by the fill engine: its book no longer crosses
    second = await mesh.submit(trader, symbol="GOOGL", qty="10", limit_price=str(limit))
    assert second.status == orders_pb2.ORDER_STATUS_ACCEPTED
    await mesh.inject_quote("GOOGL", limit - CENT, limit, sequence)
    await asyncio.sleep(1.5)
    assert (await mesh.order(trader, second.id)).filled_qty in ("", "0")

    # Fill the second one with a new tick, then redeliver the first fill to risk: its
    # position must stay at 20, not fall back to the 10 the old event carries.
    await mesh.quote_until(trader, "GOOGL", limit - CENT, limit, lambda: filled(second.id))
    old, _ = sorted(
        await fill_events(mesh, {first.id, second.id}),
        key=lambda e: D(e.message.position_qty),
    )

    async def risk_position() -> Decimal | None:
        qty: Decimal | None = await mesh.db.fetchval(
            "SELECT qty FROM risk.positions WHERE account_id = $1 AND symbol = 'GOOGL'",
            trader.account_id,
        )
        return qty

    assert await eventually(lambda: _equals(risk_position(), D(20))) == D(20)
    await mesh.producer.publish(TOPIC_FILLS, trader.account_id, old.message, event_id=old.event_id)
    await asyncio.sleep(1.5)
    assert await risk_position() == D(20)
    positions = (
        await mesh.execution.ListPositions(
            execution_pb2.ListPositionsRequest(), metadata=trader.auth
        )
    ).positions
    assert [(p.symbol, D(p.qty)) for p in positions] == [("GOOGL", D(20))]


async def _equals(value: Any, expected: Decimal) -> Decimal | None:
    got = await value
    return got if got == expected else None


async def test_a_shared_check_stream_cannot_check_another_account_without_its_credential(
    mesh: Mesh,
) -> None:
    opener, victim = await mesh.trader(), await mesh.trader()
    quote = await mesh.quote(opener, "AAPL")

    def check(request_id: str, credential: str = "") -> risk_pb2.CheckOrderRequest:
        return risk_pb2.CheckOrderRequest(
            request_id=request_id,
            account_id=victim.account_id,
            symbol="AAPL",
            side=BUY,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
            qty="1",
            limit_price=str(price(quote.bid, "0.99")),
            buying_power="100000",
            credential=credential,
        )

    async def send() -> Any:
        yield risk_pb2.CheckOrdersRequest(
            checks=[
                check("bare"),
                check("opener-credential", opener.token),
                check("victim-credential", victim.token),
            ]
        )

    replies = [r async for r in mesh.risk.CheckOrders(send(), metadata=opener.auth)]
    bare, borrowed, rightful = replies[0].results
    denied = grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert (bare.refused_code, bare.approved) == (denied, False)
    assert (borrowed.refused_code, borrowed.approved) == (denied, False)
    assert rightful.refused_code == 0 and rightful.approved


async def test_orders_page_by_cursor_without_gaps_or_repeats(mesh: Mesh) -> None:
    trader = await mesh.trader()
    quote = await mesh.quote(trader, "AAPL")
    resting = str(price(quote.bid, "0.95"))
    placed = [
        (await mesh.submit(trader, symbol="AAPL", qty="1", limit_price=resting)).id
        for _ in range(5)
    ]
    seen: list[str] = []
    sizes: list[int] = []
    token = ""
    while True:
        page = await mesh.execution.ListOrders(
            execution_pb2.ListOrdersRequest(status="all", page_size=2, page_token=token),
            metadata=trader.auth,
        )
        sizes.append(len(page.orders))
        seen.extend(order.id for order in page.orders)
        token = page.next_page_token
        if not token:
            break
    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(placed)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await mesh.execution.ListOrders(
            execution_pb2.ListOrdersRequest(page_token="not-a-cursor"), metadata=trader.auth
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
