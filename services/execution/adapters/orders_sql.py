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
from services.execution.adapters.order_rows import OPEN, order_columns
from services.execution.adapters.order_rows import order_from_row as order_from_row
from services.execution.adapters.outbox_sql import (
    EventCells,
    event_args,
    event_params,
    log_select,
    log_values,
    queue_select,
    queue_values,
)
from services.execution.app.store_ports import (
    DuplicateClientOrderId,
    OutgoingEvent,
    Submitted,
)
from services.execution.app.store_ports import StaleSequence as StaleSequence

LOCK_ACCOUNTS_SQL = """
SELECT 1 FROM accounts WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE
"""

# The reservation is a conditional UPDATE of the account row (PostgreSQL serializes
# updates of one row); the order, its event and outbox row select from it, so when
# it matches no row nothing is inserted. It also checks that the account's last event
# sequence is still the one the order's event was numbered after: the event is
# serialized whole in Python (adapters/events.py), sequence included. The final SELECT
# answers every order, written or not, with the account as the statement found it.
_RESERVED_INPUT = "FROM input i JOIN reserved r USING (order_id)"
# Each order's NEW event: its bytes, id and headers are input columns; one topic and
# schema for the batch ($22, $23).
_SUBMITTED_EVENT = EventCells(
    event_id="i.event_id",
    topic="$22",
    key="i.account_id",
    schema_name="$23",
    payload="i.event",
    headers="i.headers",
)
SUBMIT_SQL = f"""
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[],
                         $11::numeric[], $12::numeric[], $13::numeric[], $14::text[],
                         $15::numeric[], $16::text[], $17::timestamptz[], $18::bigint[],
                         $19::bytea[], $20::text[], $21::text[])
        AS i(order_id, account_id, client_order_id, symbol, side, order_type, time_in_force,
             qty, notional, limit_price, stop_price, trail_price, trail_percent, status,
             cost, replaces, created_at, sequence, event, event_id, headers)
), reserved AS (
    UPDATE accounts a
    SET reserved = a.reserved + i.cost, event_seq = i.sequence, updated_at = now()
    FROM input i
    WHERE a.account_id = i.account_id AND a.event_seq = i.sequence - 1
      AND (i.cost = 0 OR a.buying_power - a.reserved >= i.cost)
    RETURNING i.order_id
), placed AS (
    INSERT INTO orders (order_id, account_id, client_order_id, symbol, side, order_type,
        time_in_force, qty, notional, limit_price, stop_price, trail_price, trail_percent,
        status, reserved, replaces, created_at, updated_at)
    SELECT i.order_id, i.account_id, i.client_order_id, i.symbol, i.side, i.order_type,
           i.time_in_force, i.qty, i.notional, i.limit_price, i.stop_price, i.trail_price,
           i.trail_percent, i.status, i.cost, i.replaces, i.created_at, i.created_at
    FROM input i JOIN reserved r USING (order_id)
), logged AS (
    {log_select("i.account_id", "i.sequence", "i.event", _RESERVED_INPUT)}
), queued AS (
    {queue_select(_SUBMITTED_EVENT, _RESERVED_INPUT)}
)
SELECT i.order_id, r.order_id IS NOT NULL AS written, a.event_seq AS seen_sequence,
       a.buying_power - a.reserved AS available, i.cost,
       CASE WHEN r.order_id IS NOT NULL THEN {NOTIFY_SQL} END AS notified
FROM input i JOIN accounts a USING (account_id) LEFT JOIN reserved r USING (order_id)
"""


async def submit_orders(
    conn: asyncpg.Connection, batch: Sequence[tuple[Order, OutgoingEvent]]
) -> dict[str, Submitted]:
    """Reserve buying power, insert each order, its event and outbox row: one statement.

    One statement is one implicit transaction and one round trip: either all of
    it happens or none. Each order is reserved, inserted and logged exactly as
    alone: the UPDATE's condition is evaluated per account row, and an order whose
    reservation does not fit writes nothing. Two orders of one account must not
    share a batch (an UPDATE changes a row once). A duplicate client_order_id
    raises DuplicateClientOrderId and nothing of the batch is written; the caller
    then submits those orders one by one. `OutgoingEvent.sequence` is the number
    each order's event carries.
    """
    topics = {event.topic for _, event in batch}
    schemas = {event.schema_name for _, event in batch}
    assert len(topics) == 1 and len(schemas) == 1, "one event kind per batch"
    columns: list[list[Any]] = [[] for _ in range(21)]
    for order, event in batch:
        values = (
            *order_columns(order),
            event.sequence,
            event.payload,
            event.event_id,
            event.headers_json,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    try:
        if len(batch) == 1:
            rows = await conn.fetch(SUBMIT_SQL, *columns, topics.pop(), schemas.pop())
        else:
            async with conn.transaction():
                # Batches run concurrently and an UPDATE locks its rows in plan order, so
                # two batches could lock shared accounts in opposite orders and deadlock.
                # Taking the account locks in one global order first rules that out.
                accounts = sorted({order.account_id for order, _ in batch})
                await conn.execute(LOCK_ACCOUNTS_SQL, accounts)
                rows = await conn.fetch(SUBMIT_SQL, *columns, topics.pop(), schemas.pop())
    except asyncpg.UniqueViolationError as duplicate:
        raise DuplicateClientOrderId(str(duplicate)) from duplicate
    sequences = {order.order_id: event.sequence for order, event in batch}
    return {row["order_id"]: _submitted(row, sequences[row["order_id"]]) for row in rows}


def _submitted(row: asyncpg.Record, sequence: int) -> Submitted:
    if row["written"]:
        return sequence
    if row["seen_sequence"] != sequence - 1:
        return StaleSequence(row["seen_sequence"] + 1)
    available = row["available"]
    if row["cost"] == 0 or (available is not None and available >= row["cost"]):
        # The row changed after the statement's snapshot (another event committed
        # meanwhile), so the snapshot cannot tell why: try again on a fresh one.
        return StaleSequence(sequence)
    return None


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


_RECORDED_EVENT = event_params(3, key="$1")
RECORD_ORDER_EVENT_SQL = f"""
WITH logged AS (
    {log_values("$1", "$2", _RECORDED_EVENT.payload)}
), queued AS (
    {queue_values(_RECORDED_EVENT)}
)
SELECT {NOTIFY_SQL}
"""


async def record_order_event(
    conn: asyncpg.Connection, account_id: str, event: OutgoingEvent
) -> None:
    """Keep an order event for resumption and queue it in the outbox: one statement."""
    await conn.execute(RECORD_ORDER_EVENT_SQL, account_id, event.sequence, *event_args(event))


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
