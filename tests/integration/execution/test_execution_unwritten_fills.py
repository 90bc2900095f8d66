"""A fill decided by the engine whose commit fails: out of the book, then booked again from its row.

The failure is real: the fill's statement runs on a connection PostgreSQL has
just terminated (`pg_terminate_backend`), as when the database is killed between
an order's write and its fill's commit. Before the repair, such an order stayed
`accepted` in the database while the engine counted it filled, until a restart.
An order's own write whose reply is lost (committed, then the connection broke)
is booked by the same repair, if its row is there.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import asyncpg
import pytest

from cift.runtime.kafka import Event
from cift.trading.fills import Fill
from cift.trading.order_classes import ClassedRequest, StopLoss, TakeProfit
from cift.trading.orders import Order, OrderClass, OrderRequest
from cift.trading.vocabulary import OrderType, Side, TimeInForce
from services.execution.adapters import fills_sql, orders_sql
from services.execution.adapters.sql_stores import SQL_STORES
from services.execution.app.broker import Broker
from services.execution.app.store_ports import (
    Booking,
    FillStore,
    OrderStore,
    OutgoingEvent,
    SettledFill,
    Submitted,
    TakenFill,
)
from tests.integration.execution.test_execution_broker import (
    OPENING,
    D,
    StandInRisk,
    account,
    account_row,
    assert_ledger_balances,
    limit,
    market,
    new_broker,
    pool,
    symbol,
)
from tests.integration.execution.ticks import quote_event

pytestmark = pytest.mark.integration

__all__ = ["account", "pool", "symbol"]

# What a caller sees of a terminated connection: the server's notice or the closed socket.
BROKEN = (asyncpg.PostgresError, asyncpg.InterfaceError)


async def terminate(conn: asyncpg.Connection) -> None:
    """PostgreSQL ends this connection's backend, as when the database dies under it."""
    await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")


class BreakingFills:
    """The SQL fill store, except that the next `breaks` fill writes lose their connection.

    With `after_write`, the write goes through first: the connection breaks after
    the commit, so the caller sees an error for a fill that was written.
    """

    def __init__(self, breaks: int = 0, *, after_write: bool = False) -> None:
        self.breaks = breaks
        self.after_write = after_write

    def __getattr__(self, name: str) -> Any:
        return getattr(fills_sql, name)

    async def _break(self, conn: asyncpg.Connection) -> None:
        self.breaks -= 1
        await terminate(conn)

    async def book_fill(
        self,
        conn: asyncpg.Connection,
        settled: SettledFill,
        events: tuple[OutgoingEvent, OutgoingEvent],
        tick_mark: tuple[str, int] | None,
    ) -> None:
        if self.breaks > 0 and not self.after_write:
            await self._break(conn)
        await fills_sql.book_fill(conn, settled, events, tick_mark)

    async def book_expected_fill(
        self,
        conn: asyncpg.Connection,
        expected: TakenFill,
        settled: SettledFill,
        events: tuple[OutgoingEvent, OutgoingEvent],
    ) -> Booking:
        if self.breaks > 0 and not self.after_write:
            await self._break(conn)
        booking = await fills_sql.book_expected_fill(conn, expected, settled, events)
        if self.breaks > 0:  # autocommit: the fill is written, the reply is lost
            await self._break(conn)
        return booking

    async def fills_of_orders(self, conn: asyncpg.Connection, order_ids: Sequence[str]) -> Any:
        return await fills_sql.fills_of_orders(conn, order_ids)

    async def take_fill(self, conn: asyncpg.Connection, fill: Fill, at: datetime) -> Any:
        return await fills_sql.take_fill(conn, fill, at)


class BreakingWrites:
    """The SQL order store, except that the next `breaks` order writes lose their connection:
    before the statement, or (`after_write`) once it has committed."""

    def __init__(self, breaks: int = 0, *, after_write: bool = False) -> None:
        self.breaks = breaks
        self.after_write = after_write

    def __getattr__(self, name: str) -> Any:
        return getattr(orders_sql, name)

    async def submit_orders(
        self, conn: asyncpg.Connection, batch: Sequence[tuple[Order, OutgoingEvent]]
    ) -> dict[str, Submitted]:
        breaking = self.breaks > 0
        if breaking:
            self.breaks -= 1
            if not self.after_write:
                await terminate(conn)
        written = await orders_sql.submit_orders(conn, batch)
        if breaking:
            await terminate(conn)
        return written

    async def insert_order(self, conn: asyncpg.Connection, order: Order) -> None:
        """A group's insert (inside its transaction): broken before it, when breaking."""
        if self.breaks > 0 and not self.after_write:
            self.breaks -= 1
            await terminate(conn)
        await orders_sql.insert_order(conn, order)


def breaking_broker(
    pool: asyncpg.Pool, fills: BreakingFills, writes: BreakingWrites | None = None
) -> Broker:
    stores = dataclasses.replace(SQL_STORES, fills=cast(FillStore, fills))
    if writes is not None:
        stores = dataclasses.replace(stores, orders=cast(OrderStore, writes))
    return new_broker(pool, StandInRisk(), stores)


def bracket(symbol: str) -> ClassedRequest:
    """Buy 5 at 10.00, taking profit at 11.00 and stopping at 9.00."""
    entry = OrderRequest(
        symbol, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=D(5), limit_price=D("10.00")
    )
    return ClassedRequest(entry, OrderClass.BRACKET, TakeProfit(D("11.00")), StopLoss(D("9.00")))


async def limit_out_of_the_book(
    pool: asyncpg.Pool, account: str, symbol: str
) -> tuple[Broker, Order, Event]:
    """A resting buy of 3 at 10.00 whose fill by the returned tick did not commit."""
    fills = BreakingFills()
    broker = breaking_broker(pool, fills)
    order = await broker.submit(account, limit(symbol, Side.BUY, "3", "10.00"))
    fills.breaks = 1
    tick = quote_event(symbol, "9.95", "10.00")
    with pytest.raises(BROKEN):
        await broker.on_ticks([tick])
    return broker, order, tick


async def order_rows(pool: asyncpg.Pool, account_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT order_id, status, filled_qty, filled_notional, reserved, qty, parent_id"
            " FROM orders WHERE account_id = $1 ORDER BY parent_id NULLS FIRST, order_type",
            account_id,
        )
    )


async def fill_count(pool: asyncpg.Pool, account_id: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM fills WHERE account_id = $1", account_id))


async def test_a_market_order_whose_fill_did_not_commit_fills_once_the_database_answers(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    fills = BreakingFills()
    broker = breaking_broker(pool, fills)
    repairs = asyncio.create_task(broker.run_repairs())
    try:
        await broker.on_ticks([quote_event(symbol, "49.99", "50.01")])
        fills.breaks = 1
        with pytest.raises(BROKEN):
            await broker.submit(account, market(symbol, Side.BUY, "2"))
        for _ in range(200):
            rows = await order_rows(pool, account)
            if rows[0]["status"] == "filled":
                break
            await asyncio.sleep(0.02)
    finally:
        repairs.cancel()
    [row] = rows
    assert (row["status"], row["filled_qty"], row["filled_notional"], row["reserved"]) == (
        "filled",
        D(2),
        D("100.02"),
        D(0),
    )
    assert await fill_count(pool, account) == 1
    assert (await account_row(pool, account))["cash"] == OPENING - D("100.02")
    assert not broker.live.unwritten
    await assert_ledger_balances(pool, account)


async def test_a_fill_written_before_its_connection_broke_is_not_booked_twice(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    fills = BreakingFills(after_write=True)
    broker = breaking_broker(pool, fills)
    await broker.on_ticks([quote_event(symbol, "49.99", "50.01")])
    fills.breaks = 1
    with pytest.raises(BROKEN):
        await broker.submit(account, market(symbol, Side.BUY, "2"))
    [row] = await order_rows(pool, account)
    assert row["status"] == "filled"  # the write went through; its reply did not
    assert row["order_id"] in broker.live.unwritten

    assert await broker.restore.unwritten() == 0  # filled: nothing to book again
    assert row["order_id"] not in broker.engine
    assert not broker.live.unwritten
    assert await fill_count(pool, account) == 1
    assert (await account_row(pool, account))["cash"] == OPENING - D("100.02")
    await assert_ledger_balances(pool, account)


async def test_a_resting_limit_whose_tick_fill_did_not_commit_fills_at_the_last_quote(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    broker, order, tick = await limit_out_of_the_book(pool, account, symbol)
    [row] = await order_rows(pool, account)
    assert (row["status"], row["reserved"]) == ("accepted", D("30.00"))
    assert order.order_id not in broker.engine
    assert broker.live.unwritten == {order.order_id}

    assert await broker.restore.unwritten() == 1
    [row] = await order_rows(pool, account)
    assert (row["status"], row["filled_notional"], row["reserved"]) == ("filled", D(30), D(0))
    await broker.on_ticks([tick])  # the consumer retries the batch: nothing more
    assert await fill_count(pool, account) == 1
    await assert_ledger_balances(pool, account)


async def test_a_cancel_while_out_of_the_book_keeps_the_order_out(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    broker, order, _ = await limit_out_of_the_book(pool, account, symbol)
    canceled = await broker.cancel(account, order.order_id)
    assert canceled.status.value == "canceled"

    assert await broker.restore.unwritten() == 0
    assert order.order_id not in broker.engine
    assert not broker.live.canceled_before_booked
    assert await fill_count(pool, account) == 0
    assert (await account_row(pool, account))["reserved"] == 0


async def test_a_bracket_entry_whose_fill_did_not_commit_comes_back_with_its_exits(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    fills = BreakingFills()
    broker = breaking_broker(pool, fills)
    parent = await broker.submit_group(account, bracket(symbol))
    fills.breaks = 1
    with pytest.raises(BROKEN):
        await broker.on_ticks([quote_event(symbol, "9.95", "10.00")])
    statuses = [r["status"] for r in await order_rows(pool, account)]
    assert statuses == ["accepted", "held", "held"]  # the fill and the releases: neither written
    assert broker.live.unwritten == {r["order_id"] for r in await order_rows(pool, account)}

    assert await broker.restore.unwritten() == 3  # the entry and its two held exits
    rows = await order_rows(pool, account)
    assert [(r["status"], r["qty"]) for r in rows] == [
        ("filled", D(5)),
        ("accepted", D(5)),
        ("accepted", D(5)),
    ]
    assert rows[0]["order_id"] == parent.order_id
    # The exits work: the take-profit fills on the next quote, and its stop sibling goes.
    await broker.on_ticks([quote_event(symbol, "11.00", "11.05")])
    rows = await order_rows(pool, account)
    assert sorted(r["status"] for r in rows[1:]) == ["canceled", "filled"]
    assert await fill_count(pool, account) == 2
    assert not broker.live.unwritten
    await assert_ledger_balances(pool, account)


async def test_an_order_the_repair_cannot_book_yet_stays_due(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    fills = BreakingFills()
    broker = breaking_broker(pool, fills)
    order = await broker.submit(account, limit(symbol, Side.SELL, "2", "20.00"))
    fills.breaks = 2  # the tick's fill, then the repair's first try
    with pytest.raises(BROKEN):
        await broker.on_ticks([quote_event(symbol, "20.00", "20.05")])
    with pytest.raises(BROKEN):
        await broker.restore.unwritten()
    assert broker.live.unwritten == {order.order_id}
    assert order.order_id not in broker.engine

    assert await broker.restore.unwritten() == 1
    assert [r["status"] for r in await order_rows(pool, account)] == ["filled"]
    assert (await account_row(pool, account))["cash"] == OPENING + D("40.00")
    await assert_ledger_balances(pool, account)


async def test_an_order_whose_write_committed_but_whose_reply_was_lost_is_booked_and_fills(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    writes = BreakingWrites(after_write=True)
    broker = breaking_broker(pool, BreakingFills(), writes)
    await broker.on_ticks([quote_event(symbol, "49.99", "50.01")])
    request = dataclasses.replace(market(symbol, Side.BUY, "2"), client_order_id="lost-reply")
    writes.breaks = 1
    with pytest.raises(BROKEN):
        await broker.submit(account, request)
    [row] = await order_rows(pool, account)
    assert row["status"] == "accepted" and row["order_id"] not in broker.engine

    assert await broker.restore.unwritten() == 1
    [row] = await order_rows(pool, account)
    assert (row["status"], row["filled_notional"], row["reserved"]) == ("filled", D("100.02"), 0)
    # The client's retry under the same client order id finds it, filled.
    again = await broker.submit(account, request)
    assert (again.order_id, again.status.value) == (row["order_id"], "filled")
    assert await fill_count(pool, account) == 1
    await assert_ledger_balances(pool, account)


async def test_a_write_that_never_reached_the_database_leaves_nothing_to_book(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    writes = BreakingWrites()
    broker = breaking_broker(pool, BreakingFills(), writes)
    await broker.ensure_account(account)
    writes.breaks = 1
    with pytest.raises(BROKEN):
        await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    assert len(broker.live.unwritten) == 1
    assert await broker.restore.unwritten() == 0
    assert not broker.live.unwritten and len(broker.engine) == 0
    assert await order_rows(pool, account) == []
    assert (await account_row(pool, account))["reserved"] == 0


async def test_a_bracket_whose_write_broke_leaves_nothing_to_book(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    writes = BreakingWrites()
    broker = breaking_broker(pool, BreakingFills(), writes)
    await broker.ensure_account(account)
    writes.breaks = 1
    with pytest.raises(BROKEN):
        await broker.submit_group(account, bracket(symbol))
    assert len(broker.live.unwritten) == 3  # the entry and both exits, in case they were written
    assert await broker.restore.unwritten() == 0
    assert not broker.live.unwritten and len(broker.engine) == 0
    assert await order_rows(pool, account) == []
    assert (await account_row(pool, account))["reserved"] == 0
