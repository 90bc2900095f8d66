"""SQL of the execution schema, and the mapping between rows and domain values.

Only statements live here; which statements form one transaction is decided by
`broker.py`. Every money column is NUMERIC and comes back as Decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from cift.runtime.outbox import NOTIFY_SQL
from cift.runtime.timestamps import to_datetime, to_ns
from cift.trading.intraday import DayFills
from cift.trading.ledger import Position
from cift.trading.orders import Order, OrderClass, OrderStatus
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

OPEN = ("new", "held", "accepted", "partially_filled")


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event as the outbox stores it, prepared before the statement that writes it."""

    event_id: str
    topic: str
    schema_name: str
    payload: bytes
    headers_json: str


def order_columns(order: Order) -> tuple[Any, ...]:
    """An order's values in the column order every INSERT INTO orders here uses."""
    return (
        order.order_id,
        order.account_id,
        order.client_order_id,
        order.symbol,
        order.side.value,
        order.order_type.value,
        order.time_in_force.value,
        order.qty,
        order.notional,
        order.limit_price,
        order.stop_price,
        order.trail_price,
        order.trail_percent,
        order.status.value,
        order.reserved,
        order.replaces,
        to_datetime(order.created_ns),
    )


def order_from_row(row: asyncpg.Record) -> Order:
    return Order(
        order_id=row["order_id"],
        account_id=row["account_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        qty=row["qty"],
        notional=row["notional"],
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        trail_price=row["trail_price"],
        trail_percent=row["trail_percent"],
        client_order_id=row["client_order_id"],
        created_ns=to_ns(row["created_at"]),
        status=OrderStatus(row["status"]),
        updated_ns=to_ns(row["updated_at"]),
        filled_qty=row["filled_qty"],
        filled_notional=row["filled_notional"],
        fill_count=row["fill_count"],
        triggered=row["triggered"],
        reserved=row["reserved"],
        replaces=row["replaces"],
        replaced_by=row["replaced_by"],
        reason=row["reason"],
        water_mark=row["water_mark"],
        expire_ns=None if row["expire_at"] is None else to_ns(row["expire_at"]),
        extended_hours=row["extended_hours"],
        order_class=OrderClass(row["order_class"]),
        parent_id=row["parent_id"],
    )


# ---- accounts ------------------------------------------------------------------


async def open_account(
    conn: asyncpg.Connection, account_id: str, opening_cash: Decimal, multiplier: Decimal
) -> bool:
    """Create the account with its opening deposit; False when it already existed.

    The deposit is also the first point of the account's portfolio history, so a
    new account's history starts when the account does rather than at the first
    periodic snapshot (what a trader charting a fresh account expects to see).
    """
    async with conn.transaction():
        status = await conn.execute(
            """INSERT INTO accounts (account_id, cash, margin_multiplier, last_equity)
               VALUES ($1, $2, $3, $2) ON CONFLICT DO NOTHING""",
            account_id,
            opening_cash,
            multiplier,
        )
        if status != "INSERT 0 1":
            return False
        await conn.execute(
            """INSERT INTO activities (activity_id, account_id, activity_type, occurred_at,
                                       net_amount, description)
               VALUES ($1, $2, 'deposit', now(), $3, 'Opening deposit')""",
            f"deposit-{account_id}",
            account_id,
            opening_cash,
        )
        await conn.execute(
            "INSERT INTO equity_snapshots (account_id, taken_at, equity) VALUES ($1, now(), $2)",
            account_id,
            opening_cash,
        )
        return True


async def get_account(conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM accounts WHERE account_id = $1", account_id)


CONTEXT_SQL = """
SELECT i.n, a.cash, a.net_cost, a.gross_cost, a.reserved, a.margin_multiplier,
       (SELECT order_id FROM orders
        WHERE account_id = i.account_id AND client_order_id = i.client_order_id
       ) AS existing_order_id,
       coalesce(p.qty, 0) AS position_qty
FROM unnest($1::text[], $2::text[], $3::text[])
         WITH ORDINALITY AS i(account_id, symbol, client_order_id, n)
JOIN accounts a ON a.account_id = i.account_id
LEFT JOIN positions p ON p.account_id = i.account_id AND p.symbol = i.symbol
ORDER BY i.n
"""


async def order_contexts(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, str]]
) -> list[asyncpg.Record]:
    """What pre-trade checks need from the ledger, for many (account, symbol, client_order_id).

    Per item: the account row, the position and `existing_order_id`, the order
    already submitted under that client_order_id (idempotent resubmission). One
    round trip for all of them, answers in the given order. Open orders are not
    read here: the fill engine holds every one of them (`FillEngine.open_orders_of`),
    and counting them from the table cost a scan of the account's open orders
    per order.
    """
    rows = await conn.fetch(
        CONTEXT_SQL,
        [w[0] for w in wanted],
        [w[1] for w in wanted],
        [w[2] for w in wanted],
    )
    assert len(rows) == len(wanted), "accounts are opened before any order reaches the store"
    return list(rows)


async def order_context(
    conn: asyncpg.Connection, account_id: str, symbol: str, client_order_id: str = ""
) -> asyncpg.Record:
    """`order_contexts` for one order."""
    return (await order_contexts(conn, [(account_id, symbol, client_order_id)]))[0]


async def reserve_buying_power(
    conn: asyncpg.Connection, account_id: str, amount: Decimal, events: int
) -> int | None:
    """Hold `amount` of buying power atomically; None when there is not enough.

    PostgreSQL serializes updates of one row, so concurrent orders of an account
    can never reserve more than it has. The buying-power expression mirrors
    `ledger.buying_power`. Also claims `events` order-event sequence numbers and
    returns the last one.
    """
    value: int | None = await conn.fetchval(
        """UPDATE accounts
           SET reserved = reserved + $2::numeric, event_seq = event_seq + $3, updated_at = now()
           WHERE account_id = $1
             AND ($2::numeric = 0 OR greatest(0, (cash + net_cost) * margin_multiplier - gross_cost)
                            - reserved >= $2::numeric)
           RETURNING event_seq""",
        account_id,
        amount,
        events,
    )
    return value


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


async def release_and_sequence(
    conn: asyncpg.Connection, account_id: str, released: Decimal, events: int
) -> int:
    """Give back reserved buying power and claim `events` sequence numbers."""
    value: int = await conn.fetchval(
        """UPDATE accounts
           SET reserved = greatest(0, reserved - $2), event_seq = event_seq + $3, updated_at = now()
           WHERE account_id = $1 RETURNING event_seq""",
        account_id,
        released,
        events,
    )
    return value


# ---- orders --------------------------------------------------------------------


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


class _Page:
    """One page of an account's rows, newest first: `(time, id) < cursor`, keyset paging.

    Orders and activities page the same way; only the table, its time column and
    the extra filters differ.
    """

    def __init__(self, account_id: str) -> None:
        self.clauses = ["account_id = $1"]
        self.args: list[Any] = [account_id]

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    async def fetch(
        self,
        conn: asyncpg.Connection,
        table: str,
        time_column: str,
        id_column: str,
        *,
        after: datetime | None,
        until: datetime | None,
        cursor: tuple[datetime, str] | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        if after is not None:
            self.clauses.append(f"{time_column} >= {self.arg(after)}")
        if until is not None:
            self.clauses.append(f"{time_column} < {self.arg(until)}")
        if cursor is not None:
            self.clauses.append(
                f"({time_column}, {id_column}) < ({self.arg(cursor[0])}, {self.arg(cursor[1])})"
            )
        sql = (
            f"SELECT * FROM {table} WHERE {' AND '.join(self.clauses)} "
            f"ORDER BY {time_column} DESC, {id_column} DESC LIMIT {self.arg(limit)}"
        )
        return list(await conn.fetch(sql, *self.args))


async def list_orders(
    conn: asyncpg.Connection,
    account_id: str,
    *,
    statuses: Sequence[str] | None,
    symbols: Sequence[str],
    after: datetime | None,
    until: datetime | None,
    cursor: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    page = _Page(account_id)
    if statuses is not None:
        page.clauses.append(f"status = ANY({page.arg(list(statuses))}::text[])")
    if symbols:
        page.clauses.append(f"symbol = ANY({page.arg(list(symbols))}::text[])")
    return await page.fetch(
        conn,
        "orders",
        "created_at",
        "order_id",
        after=after,
        until=until,
        cursor=cursor,
        limit=limit,
    )


# ---- fills, positions, activities ---------------------------------------------


async def positions(conn: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM positions WHERE account_id = $1 AND qty <> 0 ORDER BY symbol", account_id
        )
    )


async def position(conn: asyncpg.Connection, account_id: str, symbol: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM positions WHERE account_id = $1 AND symbol = $2 AND qty <> 0",
        account_id,
        symbol,
    )


TAKE_FILL_SQL = """
WITH recorded AS (
    INSERT INTO fills (fill_id, order_id, account_id, symbol, side, qty, price, commission,
                       occurred_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING
    RETURNING fill_id
)
SELECT o.*, held.qty AS held_qty, held.cost_basis AS held_cost_basis
FROM recorded
JOIN orders o ON o.order_id = $2
LEFT JOIN LATERAL (
    SELECT qty, cost_basis FROM positions WHERE account_id = $3 AND symbol = $4 FOR UPDATE
) held ON true
FOR UPDATE OF o
"""


async def take_fill(
    conn: asyncpg.Connection,
    *,
    fill_id: str,
    order_id: str,
    account_id: str,
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    commission: Decimal,
    at: datetime,
) -> tuple[Position, asyncpg.Record] | None:
    """Record a fill and lock its position and order rows: one statement.

    None when this fill id was already applied: then nothing is written or
    locked, and nothing else may change. Otherwise the position as it stands
    (locked before the order, as every fill does) and the order row.
    """
    row = await conn.fetchrow(
        TAKE_FILL_SQL, fill_id, order_id, account_id, symbol, side, qty, price, commission, at
    )
    if row is None:
        return None
    if row["held_qty"] is None:
        return Position(symbol), row
    return Position(symbol, row["held_qty"], row["held_cost_basis"]), row


SETTLE_FILL_SQL = """
WITH held AS (
    INSERT INTO positions (account_id, symbol, qty, cost_basis, realized_pnl, updated_at)
    VALUES ($1, $2, $3, $4, $5, now())
    ON CONFLICT (account_id, symbol) DO UPDATE
    SET qty = $3, cost_basis = $4, realized_pnl = positions.realized_pnl + $5, updated_at = now()
), placed AS (
    UPDATE orders
    SET status = $7, filled_qty = $8, filled_notional = $9, fill_count = $10,
        commission = commission + $11, reserved = greatest(0, reserved - $12),
        triggered = $13, water_mark = $14, updated_at = $15,
        filled_at = CASE WHEN $7 = 'filled' THEN $15 ELSE filled_at END
    WHERE order_id = $6
    RETURNING commission
), charged AS (
    UPDATE accounts
    SET cash = cash + $16, net_cost = net_cost + $17, gross_cost = gross_cost + $18,
        realized_pnl = realized_pnl + $5, commissions = commissions + $19,
        reserved = greatest(0, reserved - $12), event_seq = event_seq + 1, updated_at = now()
    WHERE account_id = $1
    RETURNING cash, event_seq
)
SELECT charged.cash, charged.event_seq, placed.commission FROM charged, placed
"""


async def settle_fill_rows(
    conn: asyncpg.Connection,
    *,
    position: Position,
    realized_pnl: Decimal,
    order: Order,
    commission: Decimal,
    released: Decimal,
    at: datetime,
    cash_delta: Decimal,
    net_cost_delta: Decimal,
    gross_cost_delta: Decimal,
) -> asyncpg.Record:
    """A fill's position, order and account changes in one statement (one round trip).

    The position and order rows are already locked by the caller's transaction;
    the account row is updated last, as in every other transaction that changes
    it. Returns the account's new cash and event sequence, and the order's total
    commission, which the fill's events carry.
    """
    row = await conn.fetchrow(
        SETTLE_FILL_SQL,
        order.account_id,
        position.symbol,
        position.qty,
        position.cost_basis,
        realized_pnl,
        order.order_id,
        order.status.value,
        order.filled_qty,
        order.filled_notional,
        order.fill_count,
        commission,
        released,
        order.triggered,
        order.water_mark,
        at,
        cash_delta,
        net_cost_delta,
        gross_cost_delta,
        commission,
    )
    assert row is not None, f"order {order.order_id} or its account vanished"
    return row


RECORD_FILL_SQL = f"""
WITH activity AS (
    INSERT INTO activities (activity_id, account_id, activity_type, occurred_at, net_amount,
                            symbol, side, qty, price, order_id, description)
    VALUES ($1, $2, 'fill', $3, $4, $5, $6, $7, $8, $9, $10)
), logged AS (
    INSERT INTO order_events (account_id, sequence, payload) VALUES ($2, $11, $12)
), queued AS (
    INSERT INTO outbox (event_id, topic, key, schema_name, payload, headers)
    VALUES ($13, $14, $2, $15, $12, $16::jsonb), ($17, $18, $2, $19, $20, $21::jsonb)
)
SELECT {NOTIFY_SQL}
"""


async def record_fill(
    conn: asyncpg.Connection,
    *,
    fill_id: str,
    account_id: str,
    net_amount: Decimal,
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    order_id: str,
    at: datetime,
    sequence: int,
    order_event: OutgoingEvent,
    fill_event: OutgoingEvent,
) -> None:
    """A fill's activity entry, its order event and both outbox rows: one statement.

    The outbox rows go in this order (order event, then fill event), so the relay
    publishes them in it.
    """
    await conn.execute(
        RECORD_FILL_SQL,
        fill_id,
        account_id,
        at,
        net_amount,
        symbol,
        side,
        qty,
        price,
        order_id,
        f"{side.capitalize()} {qty} {symbol} @ {price}",
        sequence,
        order_event.payload,
        order_event.event_id,
        order_event.topic,
        order_event.schema_name,
        order_event.headers_json,
        fill_event.event_id,
        fill_event.topic,
        fill_event.schema_name,
        fill_event.payload,
        fill_event.headers_json,
    )


async def list_activities(
    conn: asyncpg.Connection,
    account_id: str,
    *,
    types: Sequence[str],
    after: datetime | None,
    until: datetime | None,
    cursor: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    page = _Page(account_id)
    if types:
        page.clauses.append(f"activity_type = ANY({page.arg(list(types))}::text[])")
    return await page.fetch(
        conn,
        "activities",
        "occurred_at",
        "activity_id",
        after=after,
        until=until,
        cursor=cursor,
        limit=limit,
    )


async def day_fills(
    conn: asyncpg.Connection, account_id: str, since: datetime
) -> dict[str, DayFills]:
    """Per symbol, the account's fills from `since` on, summed per side.

    Read from the activity trail, which is indexed by account and time (fills is
    not). Each fill's amount is rounded to the cent half up, as the ledger books it.
    """
    rows = await conn.fetch(
        """SELECT symbol,
               coalesce(sum(qty) FILTER (WHERE side = 'buy'), 0) AS bought_qty,
               coalesce(sum(round(qty * price, 2)) FILTER (WHERE side = 'buy'), 0)
                   AS bought_amount,
               coalesce(sum(qty) FILTER (WHERE side = 'sell'), 0) AS sold_qty,
               coalesce(sum(round(qty * price, 2)) FILTER (WHERE side = 'sell'), 0)
                   AS sold_amount
        FROM activities
        WHERE account_id = $1 AND activity_type = 'fill' AND occurred_at >= $2
        GROUP BY symbol""",
        account_id,
        since,
    )
    return {
        r["symbol"]: DayFills(r["bought_qty"], r["bought_amount"], r["sold_qty"], r["sold_amount"])
        for r in rows
    }


# ---- order events, ticks, equity ----------------------------------------------


async def insert_order_event(
    conn: asyncpg.Connection, account_id: str, sequence: int, payload: bytes
) -> None:
    await conn.execute(
        "INSERT INTO order_events (account_id, sequence, payload) VALUES ($1, $2, $3)",
        account_id,
        sequence,
        payload,
    )


async def order_events_after(
    conn: asyncpg.Connection, account_id: str, sequence: int
) -> list[bytes]:
    rows = await conn.fetch(
        "SELECT payload FROM order_events WHERE account_id = $1 AND sequence > $2 ORDER BY sequence",
        account_id,
        sequence,
    )
    return [row["payload"] for row in rows]


async def advance_tick_mark(conn: asyncpg.Connection, symbol: str, sequence: int) -> None:
    await conn.execute(
        """INSERT INTO tick_marks (symbol, sequence) VALUES ($1, $2)
           ON CONFLICT (symbol) DO UPDATE SET sequence = greatest(tick_marks.sequence, $2)""",
        symbol,
        sequence,
    )


async def tick_marks(conn: asyncpg.Connection) -> dict[str, int]:
    return {row["symbol"]: row["sequence"] for row in await conn.fetch("SELECT * FROM tick_marks")}


async def all_accounts_with_positions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT a.account_id, a.cash,
                      coalesce(array_agg(p.symbol) FILTER (WHERE p.qty <> 0), '{}') AS symbols,
                      coalesce(array_agg(p.qty) FILTER (WHERE p.qty <> 0), '{}') AS qtys,
                      coalesce(array_agg(p.cost_basis) FILTER (WHERE p.qty <> 0), '{}') AS costs
               FROM accounts a LEFT JOIN positions p ON p.account_id = a.account_id
               GROUP BY a.account_id, a.cash"""
        )
    )


async def insert_equity_snapshots(
    conn: asyncpg.Connection, rows: list[tuple[str, datetime, Decimal]]
) -> None:
    await conn.executemany(
        "INSERT INTO equity_snapshots (account_id, taken_at, equity) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        rows,
    )


async def set_last_equity(conn: asyncpg.Connection, rows: list[tuple[str, Decimal]]) -> None:
    # In account order, the global order submit batches lock accounts in: updating
    # them in any other order deadlocks against a batch of orders for the same accounts.
    await conn.executemany(
        "UPDATE accounts SET last_equity = $2 WHERE account_id = $1", sorted(rows)
    )


async def equity_history(
    conn: asyncpg.Connection, account_id: str, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT taken_at, equity FROM equity_snapshots
               WHERE account_id = $1 AND taken_at >= $2 AND taken_at <= $3 ORDER BY taken_at""",
            account_id,
            start,
            end,
        )
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
