"""SQL of what an account looks back on: order and activity pages, order events after a
sequence, equity snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.execution.app.store_ports import PageQuery


class _Page:
    """One page of an account's rows, newest first: `(time, id) < cursor`, keyset paging.

    Orders and activities page the same way; only the table, its time column and
    the extra filters differ.
    """

    def __init__(self, account_id: str, query: PageQuery) -> None:
        self.clauses = ["account_id = $1"]
        self.args: list[Any] = [account_id]
        self.query = query

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    async def fetch(
        self, conn: asyncpg.Connection, table: str, time_column: str, id_column: str
    ) -> list[asyncpg.Record]:
        query = self.query
        if query.after is not None:
            self.clauses.append(f"{time_column} >= {self.arg(query.after)}")
        if query.until is not None:
            self.clauses.append(f"{time_column} < {self.arg(query.until)}")
        if query.cursor is not None:
            after_time, after_id = (self.arg(value) for value in query.cursor)
            self.clauses.append(f"({time_column}, {id_column}) < ({after_time}, {after_id})")
        sql = (
            f"SELECT * FROM {table} WHERE {' AND '.join(self.clauses)} "
            f"ORDER BY {time_column} DESC, {id_column} DESC LIMIT {self.arg(query.limit)}"
        )
        return list(await conn.fetch(sql, *self.args))


async def list_orders(
    conn: asyncpg.Connection,
    account_id: str,
    query: PageQuery,
    *,
    statuses: Sequence[str] | None,
    symbols: Sequence[str],
) -> list[asyncpg.Record]:
    page = _Page(account_id, query)
    if statuses is not None:
        page.clauses.append(f"status = ANY({page.arg(list(statuses))}::text[])")
    if symbols:
        page.clauses.append(f"symbol = ANY({page.arg(list(symbols))}::text[])")
    return await page.fetch(conn, "orders", "created_at", "order_id")


async def list_activities(
    conn: asyncpg.Connection, account_id: str, query: PageQuery, *, types: Sequence[str]
) -> list[asyncpg.Record]:
    page = _Page(account_id, query)
    if types:
        page.clauses.append(f"activity_type = ANY({page.arg(list(types))}::text[])")
    return await page.fetch(conn, "activities", "occurred_at", "activity_id")


async def order_events_after(
    conn: asyncpg.Connection, account_id: str, sequence: int
) -> list[bytes]:
    rows = await conn.fetch(
        "SELECT payload FROM order_events WHERE account_id = $1 AND sequence > $2 ORDER BY sequence",
        account_id,
        sequence,
    )
    return [row["payload"] for row in rows]


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
