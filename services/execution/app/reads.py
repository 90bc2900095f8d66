"""Reads behind GetOrder, ListOrders, StreamOrderUpdates' resumption and ListActivities.

Nothing here changes state. Stored orders come back with the legs of any group
parent among them (`StoredOrders`), for the edge to encode as replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from cift.trading.fills import FillExplanation
from services.execution.adapters import fills_sql, history_sql, orders_sql
from services.execution.app.amend import OrderAmendments


@dataclass(frozen=True, slots=True)
class StoredOrders:
    rows: list[asyncpg.Record]
    # The legs of the bracket, OCO and OTO parents among `rows`, oldest first.
    legs: list[asyncpg.Record]
    # Fills of the orders and their legs, oldest first (read for GetOrder only).
    fills: list[asyncpg.Record] = field(default_factory=list)


class Reads:
    def __init__(self, pool: asyncpg.Pool, amend: OrderAmendments) -> None:
        self.pool = pool
        self.amend = amend

    async def order(self, order_id: str) -> StoredOrders:
        """An order just placed or changed by this service (it exists)."""
        async with self.pool.acquire() as conn:
            row = await orders_sql.get_order(conn, order_id)
            assert row is not None
            return await _with_legs(conn, [row])

    async def owned_order(self, account_id: str, order_id: str, is_admin: bool) -> StoredOrders:
        """The caller's order (any order for an admin); NotFound otherwise."""
        async with self.pool.acquire() as conn:
            row = await self.amend.owned_row(conn, account_id, order_id, is_admin)
            stored = await _with_legs(conn, [row])
            ids = [row["order_id"], *(leg["order_id"] for leg in stored.legs)]
            return StoredOrders(
                stored.rows, stored.legs, await fills_sql.fills_of_orders(conn, ids)
            )

    async def orders(
        self,
        account_id: str,
        query: history_sql.PageQuery,
        *,
        statuses: Sequence[str] | None,
        symbols: Sequence[str],
        limit: int,
    ) -> tuple[StoredOrders, list[asyncpg.Record]]:
        """A page of orders with their legs, and the rows read (one beyond the page, if any)."""
        async with self.pool.acquire() as conn:
            rows = await history_sql.list_orders(
                conn, account_id, query, statuses=statuses, symbols=symbols
            )
            return await _with_legs(conn, rows[:limit]), rows

    async def order_events_after(self, account_id: str, sequence: int) -> list[bytes]:
        async with self.pool.acquire() as conn:
            return await history_sql.order_events_after(conn, account_id, sequence)

    async def activities(
        self, account_id: str, query: history_sql.PageQuery, *, types: Sequence[str], limit: int
    ) -> tuple[list[asyncpg.Record], dict[str, FillExplanation]]:
        """A page of activities (one row beyond it, if any) and the explanations of its fills."""
        async with self.pool.acquire() as conn:
            rows = await history_sql.list_activities(conn, account_id, query, types=types)
            fill_ids = [r["activity_id"] for r in rows[:limit] if r["activity_type"] == "fill"]
            explained = await fills_sql.explanations(conn, fill_ids) if fill_ids else {}
        return rows, explained


async def _with_legs(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> StoredOrders:
    parents = [r["order_id"] for r in rows if r["order_class"] != "simple" and not r["parent_id"]]
    legs = await orders_sql.legs_of(conn, parents) if parents else []
    return StoredOrders(rows, legs)
