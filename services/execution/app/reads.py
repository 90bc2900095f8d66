"""Reads behind GetOrder, ListOrders, StreamOrderUpdates' resumption and ListActivities.

Nothing here changes state. Stored orders come back with the legs of any group
parent among them (`StoredOrders`), for the edge to encode as replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cift.trading.fills import FillExplanation
from services.execution.app.amend import OrderAmendments
from services.execution.app.store_ports import (
    Connection,
    Database,
    OrderStore,
    PageQuery,
    Row,
    Stores,
)


@dataclass(frozen=True, slots=True)
class StoredOrders:
    rows: list[Row]
    # The legs of the bracket, OCO and OTO parents among `rows`, oldest first.
    legs: list[Row]
    # Fills of the orders and their legs, oldest first (read for GetOrder only).
    fills: list[Row] = field(default_factory=list)


class Reads:
    def __init__(self, pool: Database, stores: Stores, amend: OrderAmendments) -> None:
        self.pool = pool
        self.stores = stores
        self.amend = amend

    async def order(self, order_id: str) -> StoredOrders:
        """An order just placed or changed by this service (it exists)."""
        async with self.pool.acquire() as conn:
            row = await self.stores.orders.get_order(conn, order_id)
            assert row is not None
            return await _with_legs(self.stores.orders, conn, [row])

    async def owned_order(self, account_id: str, order_id: str, is_admin: bool) -> StoredOrders:
        """The caller's order (any order for an admin); NotFound otherwise."""
        async with self.pool.acquire() as conn:
            row = await self.amend.owned_row(conn, account_id, order_id, is_admin)
            stored = await _with_legs(self.stores.orders, conn, [row])
            ids = [row["order_id"], *(leg["order_id"] for leg in stored.legs)]
            return StoredOrders(
                stored.rows, stored.legs, await self.stores.fills.fills_of_orders(conn, ids)
            )

    async def orders(
        self,
        account_id: str,
        query: PageQuery,
        *,
        statuses: Sequence[str] | None,
        symbols: Sequence[str],
        limit: int,
    ) -> tuple[StoredOrders, list[Row]]:
        """A page of orders with their legs, and the rows read (one beyond the page, if any)."""
        async with self.pool.acquire() as conn:
            rows = await self.stores.history.list_orders(
                conn, account_id, query, statuses=statuses, symbols=symbols
            )
            return await _with_legs(self.stores.orders, conn, rows[:limit]), rows

    async def order_events_after(self, account_id: str, sequence: int) -> list[bytes]:
        async with self.pool.acquire() as conn:
            return await self.stores.history.order_events_after(conn, account_id, sequence)

    async def activities(
        self, account_id: str, query: PageQuery, *, types: Sequence[str], limit: int
    ) -> tuple[list[Row], dict[str, FillExplanation]]:
        """A page of activities (one row beyond it, if any) and the explanations of its fills."""
        async with self.pool.acquire() as conn:
            rows = await self.stores.history.list_activities(conn, account_id, query, types=types)
            fill_ids = [r["activity_id"] for r in rows[:limit] if r["activity_type"] == "fill"]
            explained = await self.stores.fills.explanations(conn, fill_ids) if fill_ids else {}
        return rows, explained


async def _with_legs(orders: OrderStore, conn: Connection, rows: list[Row]) -> StoredOrders:
    parents = [r["order_id"] for r in rows if r["order_class"] != "simple" and not r["parent_id"]]
    legs = await orders.legs_of(conn, parents) if parents else []
    return StoredOrders(rows, legs)
