"""SQL of the order aggregate: submit (reserve, insert, event, outbox in one statement),
close, legs, water marks, the instruments the book was built with.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from cift.runtime.outbox import NOTIFY_SQL
from cift.runtime.timestamps import to_datetime
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import Instrument
from services.execution.adapters.order_rows import (
    OPEN,
    OutgoingEvent,
    order_columns,
)

SUBMIT_SQL = f"""
WITH reserved AS (
    UPDATE accounts
    SET reserved = reserved + $15::numeric, event_seq = event_seq + 1, updated_at = now()
    WHERE account_id = $2
      AND ($15::numeric = 0
           OR greatest(0, (cash + net_cost) * margin_multiplier - gross_cost)
              - reserved >= $15::numeric)
    RETURNING event_seq, $18::bytea || '\\x38'::bytea || pb_varint(event_seq) AS payload
), placed AS (
    INSERT INTO orders (order_id, account_id, client_order_id, symbol, side, order_type,
        time_in_force, qty, notional, limit_price, stop_price, trail_price, trail_percent,
        status, reserved, replaces, created_at, updated_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8::numeric, $9::numeric, $10::numeric, $11::numeric,
           $12::numeric, $13::numeric, $14, $15::numeric, $16, $17, $17
    FROM reserved
), logged AS (
    INSERT INTO order_events (account_id, sequence, payload)
    SELECT $2, event_seq, payload FROM reserved
), queued AS (
    INSERT INTO outbox (event_id, topic, key, schema_name, payload, headers)
    SELECT $19, $20, $2, $21, payload, $22::jsonb FROM reserved
)
SELECT event_seq, payload, {NOTIFY_SQL} FROM reserved
"""


async def submit_order(
    conn: asyncpg.Connection, order: Order, event: OutgoingEvent
) -> tuple[int, bytes] | None:
    """Reserve buying power, insert the order, its event and outbox row: one statement.

    One statement is one implicit transaction and one round trip: either all of
    it happens or none. The reservation is the conditional UPDATE of
    `reserve_buying_power` (PostgreSQL serializes updates of one account row);
    when it matches no row the inserts, which select from it, insert nothing and
    None is returned. `event.payload` is the OrderEvent without its sequence,
    which the UPDATE hands out and SQL appends (migration 002). A duplicate
    client_order_id raises UniqueViolationError and nothing is written.
    """
    row = await conn.fetchrow(
        SUBMIT_SQL,
        *order_columns(order),
        event.payload,
        event.event_id,
        event.topic,
        event.schema_name,
        event.headers_json,
    )
    if row is None:
        return None
    return row["event_seq"], row["payload"]


LOCK_ACCOUNTS_SQL = """
SELECT 1 FROM accounts WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE
"""


SUBMIT_MANY_SQL = f"""
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[],
                         $11::numeric[], $12::numeric[], $13::numeric[], $14::text[],
                         $15::numeric[], $16::text[], $17::timestamptz[], $18::bytea[],
                         $19::text[], $20::text[])
        AS i(order_id, account_id, client_order_id, symbol, side, order_type, time_in_force,
             qty, notional, limit_price, stop_price, trail_price, trail_percent, status,
             cost, replaces, created_at, event, event_id, headers)
), reserved AS (
    UPDATE accounts a
    SET reserved = a.reserved + i.cost, event_seq = a.event_seq + 1, updated_at = now()
    FROM input i
    WHERE a.account_id = i.account_id
      AND (i.cost = 0 OR greatest(0, (a.cash + a.net_cost) * a.margin_multiplier - a.gross_cost)
                         - a.reserved >= i.cost)
    RETURNING i.order_id, a.event_seq, i.event || '\\x38'::bytea || pb_varint(a.event_seq) AS payload
), placed AS (
    INSERT INTO orders (order_id, account_id, client_order_id, symbol, side, order_type,
        time_in_force, qty, notional, limit_price, stop_price, trail_price, trail_percent,
        status, reserved, replaces, created_at, updated_at)
    SELECT i.order_id, i.account_id, i.client_order_id, i.symbol, i.side, i.order_type,
           i.time_in_force, i.qty, i.notional, i.limit_price, i.stop_price, i.trail_price,
           i.trail_percent, i.status, i.cost, i.replaces, i.created_at, i.created_at
    FROM input i JOIN reserved r USING (order_id)
), logged AS (
    INSERT INTO order_events (account_id, sequence, payload)
    SELECT i.account_id, r.event_seq, r.payload FROM input i JOIN reserved r USING (order_id)
), queued AS (
    INSERT INTO outbox (event_id, topic, key, schema_name, payload, headers)
    SELECT i.event_id, $21, i.account_id, $22, r.payload, i.headers::jsonb
    FROM input i JOIN reserved r USING (order_id)
)
SELECT r.order_id, r.event_seq, r.payload, {NOTIFY_SQL} FROM reserved r
"""


async def submit_orders(
    conn: asyncpg.Connection, batch: Sequence[tuple[Order, OutgoingEvent]]
) -> dict[str, tuple[int, bytes]]:
    """`submit_order` for many orders of distinct accounts in one statement.

    Each order is reserved, inserted and logged exactly as alone: the UPDATE's
    condition is evaluated per account row, and an order whose reservation does
    not fit is simply absent from the answer (nothing of it is written). Two
    orders of one account must not share a batch (an UPDATE changes a row once).
    Any error (a duplicate client_order_id) rolls back the whole statement; the
    caller then submits those orders one by one.
    """
    topics = {event.topic for _, event in batch}
    schemas = {event.schema_name for _, event in batch}
    assert len(topics) == 1 and len(schemas) == 1, "one event kind per batch"
    columns: list[list[Any]] = [[] for _ in range(20)]
    for order, event in batch:
        values = (
            *order_columns(order),
            event.payload,
            event.event_id,
            event.headers_json,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    async with conn.transaction():
        # Batches run concurrently and an UPDATE locks its rows in plan order, so
        # two batches could lock shared accounts in opposite orders and deadlock.
        # Taking the account locks in one global order first rules that out.
        await conn.execute(LOCK_ACCOUNTS_SQL, sorted({order.account_id for order, _ in batch}))
        rows = await conn.fetch(SUBMIT_MANY_SQL, *columns, topics.pop(), schemas.pop())
    return {row["order_id"]: (row["event_seq"], row["payload"]) for row in rows}


async def insert_order(conn: asyncpg.Connection, order: Order) -> None:
    """Insert one order with every column, its class and session terms included."""
    await conn.execute(
        """INSERT INTO orders (order_id, account_id, client_order_id, symbol, side, order_type,
               time_in_force, qty, notional, limit_price, stop_price, trail_price, trail_percent,
               status, reserved, replaces, created_at, updated_at, order_class, parent_id,
               expire_at, extended_hours)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17,
                   $18, $19, $20, $21)""",
        *order_columns(order),
        order.order_class.value,
        order.parent_id,
        None if order.expire_ns is None else to_datetime(order.expire_ns),
        order.extended_hours,
    )


async def release_leg(conn: asyncpg.Connection, order_id: str, qty: Decimal, at: datetime) -> None:
    """A held exit leg starts working, or a working one grows, sized to its entry's fills."""
    await conn.execute(
        """UPDATE orders SET qty = $2, updated_at = $3,
               status = CASE WHEN status = 'held' THEN 'accepted' ELSE status END
           WHERE order_id = $1""",
        order_id,
        qty,
        at,
    )


async def legs_of(conn: asyncpg.Connection, parent_ids: list[str]) -> list[asyncpg.Record]:
    """The legs of these parents (replaced ones included), oldest first, take-profit first."""
    return list(
        await conn.fetch(
            """SELECT * FROM orders WHERE parent_id = ANY($1::text[])
               ORDER BY created_at, order_type <> 'limit', order_id""",
            parent_ids,
        )
    )


async def open_exits(
    conn: asyncpg.Connection, account_id: str, symbol: str, side: str
) -> list[str]:
    """Open orders of contingent groups that would trade `side` in `symbol` (closing exits)."""
    rows = await conn.fetch(
        """SELECT order_id FROM orders
           WHERE account_id = $1 AND symbol = $2 AND side = $3 AND order_class <> 'simple'
             AND status = ANY($4::text[]) AND (parent_id IS NOT NULL OR order_class = 'oco')
           ORDER BY created_at, order_id""",
        account_id,
        symbol,
        side,
        list(OPEN),
    )
    return [row["order_id"] for row in rows]


async def get_order(
    conn: asyncpg.Connection, order_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    sql = "SELECT * FROM orders WHERE order_id = $1"
    return await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), order_id)


async def get_order_by_client_id(
    conn: asyncpg.Connection, account_id: str, client_order_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM orders WHERE account_id = $1 AND client_order_id = $2",
        account_id,
        client_order_id,
    )


async def close_order(
    conn: asyncpg.Connection,
    order_id: str,
    status: OrderStatus,
    reason: str,
    at: datetime,
    replaced_by: str | None = None,
) -> None:
    """Record a final status that is not a fill; the order holds no reservation after it."""
    column = {
        OrderStatus.CANCELED: "canceled_at",
        OrderStatus.EXPIRED: "expired_at",
        OrderStatus.REPLACED: "replaced_at",
        OrderStatus.FILLED: "filled_at",
        OrderStatus.REJECTED: "updated_at",
    }[status]
    await conn.execute(
        f"""UPDATE orders SET status = $2, reason = $3, updated_at = $4, {column} = $4,
                reserved = 0, replaced_by = coalesce($5, replaced_by)
            WHERE order_id = $1""",
        order_id,
        status.value,
        reason,
        at,
        replaced_by,
    )


async def mark_triggered(
    conn: asyncpg.Connection, order_id: str, water_mark: Decimal | None, at: datetime
) -> None:
    await conn.execute(
        "UPDATE orders SET triggered = true, water_mark = $2, updated_at = $3 WHERE order_id = $1",
        order_id,
        water_mark,
        at,
    )


async def save_water_marks(conn: asyncpg.Connection, marks: dict[str, Decimal]) -> None:
    """Persist trailing stops' water marks, only ever tightening them.

    A sell trails its high-water mark and a buy its low-water mark, so the stored
    mark may only rise (sell) or fall (buy): a late or repeated batch cannot
    loosen a stop. Triggered and closed orders keep what their change recorded.
    """
    # One statement per order, each its own transaction: a batch in one transaction
    # would hold several orders' row locks at once, and a fill transaction locking
    # two of them in the other order would deadlock with it. Tightening needs no
    # atomicity across orders.
    for order_id, mark in marks.items():
        await conn.execute(
            """UPDATE orders
           SET water_mark = CASE WHEN side = 'sell'
                                 THEN greatest(coalesce(water_mark, $2), $2)
                                 ELSE least(coalesce(water_mark, $2), $2) END
           WHERE order_id = $1 AND NOT triggered
             AND status IN ('new', 'accepted', 'partially_filled')""",
            order_id,
            mark,
        )


async def open_orders(
    conn: asyncpg.Connection, account_id: str | None = None
) -> list[asyncpg.Record]:
    if account_id is None:
        return list(
            await conn.fetch(
                "SELECT * FROM orders WHERE status = ANY($1::text[]) ORDER BY created_at, order_id",
                list(OPEN),
            )
        )
    return list(
        await conn.fetch(
            """SELECT * FROM orders WHERE account_id = $1 AND status = ANY($2::text[])
               ORDER BY created_at, order_id""",
            account_id,
            list(OPEN),
        )
    )


async def insert_order_event(
    conn: asyncpg.Connection, account_id: str, sequence: int, payload: bytes
) -> None:
    await conn.execute(
        "INSERT INTO order_events (account_id, sequence, payload) VALUES ($1, $2, $3)",
        account_id,
        sequence,
        payload,
    )


async def save_instrument(conn: asyncpg.Connection, instrument: Instrument) -> None:
    await conn.execute(
        """INSERT INTO instruments (symbol, tick_size, qty_increment, fractionable, tradable)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (symbol) DO UPDATE
           SET tick_size = $2, qty_increment = $3, fractionable = $4, tradable = $5,
               updated_at = now()""",
        instrument.symbol,
        instrument.tick_size,
        instrument.qty_increment,
        instrument.fractionable,
        instrument.tradable,
    )


async def instruments(conn: asyncpg.Connection) -> dict[str, Instrument]:
    return {
        row["symbol"]: Instrument(
            row["symbol"],
            row["tick_size"],
            row["qty_increment"],
            row["fractionable"],
            row["tradable"],
        )
        for row in await conn.fetch("SELECT * FROM instruments")
    }
