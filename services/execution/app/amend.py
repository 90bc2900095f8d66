"""Changing orders already placed: cancel, cancel all, replace.

A cancel or replace takes the order out of the book and closes it in one
transaction under the engine lock; if the transaction fails the order goes back.
A replace holds the account and symbol as a submit does, and the original's
shares do not count against its successor.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from cift.runtime.errors import FailedPrecondition, NotFound
from cift.runtime.money import format_decimal
from cift.runtime.timestamps import now_ns, to_datetime
from cift.trading.orders import (
    Order,
    OrderClass,
    OrderStatus,
    ReplaceRequest,
    build_replacement,
)
from cift.trading.vocabulary import Instrument
from services.execution.app.entry import OrderEntry
from services.execution.app.journal import Journal
from services.execution.app.live import LiveBook
from services.execution.app.ports import OrderEventKind
from services.execution.app.store_ports import Connection, Database, Row, Stores
from services.execution.app.subscriptions import Subscriptions

log = logging.getLogger(__name__)


class OrderAmendments:
    def __init__(
        self,
        pool: Database,
        stores: Stores,
        live: LiveBook,
        entry: OrderEntry,
        journal: Journal,
        subscriptions: Subscriptions,
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.live = live
        self.entry = entry
        self.journal = journal
        self.subscriptions = subscriptions

    async def cancel(self, account_id: str, order_id: str, *, is_admin: bool = False) -> Order:
        async with self.live.lock:
            return await self._cancel_locked(account_id, order_id, is_admin=is_admin)

    async def owned_row(
        self,
        conn: Connection,
        account_id: str,
        order_id: str,
        is_admin: bool,
        *,
        for_update: bool = False,
    ) -> Row:
        row = (
            await self.stores.orders.get_order(conn, order_id, for_update=for_update)
            if _is_uuid(order_id)
            else None
        )
        if row is None or (row["account_id"] != account_id and not is_admin):
            raise NotFound(f"Order {order_id} was not found.")
        return row

    @asynccontextmanager
    async def _out_of_book(
        self, account_id: str, order_id: str, is_admin: bool
    ) -> AsyncIterator[tuple[Order | None, Connection, Order]]:
        """(the book's copy of the order, None if it was not booked; a transaction; the
        order as its row, locked): the order is out of the live book for the body, and
        back in it should the body or the commit fail, so a failed cancel or replace
        leaves it working. Called under the engine lock."""
        removed = self.live.engine.remove(order_id)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                order = self.stores.orders.order_from_row(
                    await self.owned_row(conn, account_id, order_id, is_admin, for_update=True)
                )
                yield removed, conn, order
        except BaseException:
            if removed is not None and removed.is_open:
                await self.journal.persist(self.live.engine.add(removed, now_ns()))
            raise

    async def _cancel_locked(self, account_id: str, order_id: str, *, is_admin: bool) -> Order:
        async with self.pool.acquire() as conn:
            await self.owned_row(conn, account_id, order_id, is_admin)
        async with self._out_of_book(account_id, order_id, is_admin) as (removed, conn, order):
            at = now_ns()
            reserved = order.close(OrderStatus.CANCELED, at, "canceled by request")
            await self.stores.orders.close_order(
                conn, order_id, OrderStatus.CANCELED, order.reason, to_datetime(at)
            )
            sequence = await self.stores.accounts.release_and_sequence(
                conn, order.account_id, reserved, 1
            )
            payload = await self.journal.emit_order_event(
                conn, order, OrderEventKind.CANCELED, sequence
            )
            # A parent's open legs go with it, in the same transaction.
            legs = await self.journal.persist_on(conn, self.live.engine.close_legs(order, at))
        if removed is None:
            self.live.canceled_before_booked.add(order_id)
        self.subscriptions.notify(order.account_id, payload)
        self.subscriptions.notify_all(legs.notices)
        return order

    async def cancel_all(
        self, account_id: str, symbols: Sequence[str]
    ) -> list[tuple[str, Order | None, str]]:
        async with self.pool.acquire() as conn:
            rows = await self.stores.orders.open_orders(conn, account_id)
        results: list[tuple[str, Order | None, str]] = []
        for row in rows:
            if symbols and row["symbol"] not in symbols:
                continue
            try:
                results.append(
                    (row["order_id"], await self.cancel(account_id, row["order_id"]), "")
                )
            except FailedPrecondition as refused:
                async with self.pool.acquire() as conn:
                    current = await self.stores.orders.get_order(conn, row["order_id"])
                order = self.stores.orders.order_from_row(current) if current else None
                # A leg canceled with its parent earlier in this loop is canceled.
                gone_with_parent = order is not None and order.status is OrderStatus.CANCELED
                results.append(
                    (row["order_id"], order, "" if gone_with_parent else refused.message)
                )
        return results

    async def replace(
        self, account_id: str, order_id: str, change: ReplaceRequest, *, is_admin: bool = False
    ) -> Order:
        async with self.pool.acquire() as conn:
            original = self.stores.orders.order_from_row(
                await self.owned_row(conn, account_id, order_id, is_admin)
            )
        instrument = await self.entry.market.instrument(original.symbol)
        if not change.client_order_id:
            change = dataclasses.replace(change, client_order_id=str(uuid.uuid4()))
        successor = build_replacement(
            original, change, instrument, order_id=str(uuid.uuid4()), now_ns=now_ns()
        )
        await self._check_group_replace(original, successor)
        release = await self.live.entries.acquire((original.account_id, original.symbol))
        try:
            return await self._replace_held(
                account_id, order_id, successor, instrument, is_admin=is_admin
            )
        finally:
            release()

    async def _check_group_replace(self, original: Order, successor: Order) -> None:
        """Legs may change price and size (never beyond what their entry filled); parents may not."""
        if original.order_class is OrderClass.SIMPLE:
            return
        if original.parent_id is None:
            raise FailedPrecondition(
                f"Order {original.order_id} is the parent of a {original.order_class.value} "
                "order: replace its legs, or cancel it (with its legs) and submit again."
            )
        async with self.pool.acquire() as conn:
            parent_row = await self.stores.orders.get_order(conn, original.parent_id)
        assert parent_row is not None and successor.qty is not None
        parent = self.stores.orders.order_from_row(parent_row)
        limit = parent.qty if parent.order_class is OrderClass.OCO else parent.filled_qty
        if original.status is OrderStatus.HELD:
            limit = parent.qty
        if limit is not None and successor.qty > limit:
            raise FailedPrecondition(
                f"An exit leg may not exceed what its entry filled: "
                f"{format_decimal(successor.qty)} > {format_decimal(limit)}."
            )

    async def _replace_held(
        self,
        account_id: str,
        order_id: str,
        successor: Order,
        instrument: Instrument,
        *,
        is_admin: bool,
    ) -> Order:
        """The replace, with its account and symbol held as a submit holds them.

        The original's shares do not count against the successor: it leaves the
        book in the same transaction that books the successor.
        """
        open_orders = await self.entry.open_orders(
            successor.account_id, successor.symbol, excluding=order_id
        )
        async with self.pool.acquire() as conn:
            context = await self.stores.accounts.order_context(
                conn, successor.account_id, successor.symbol
            )
        if successor.parent_id is None:
            successor.reserve(
                await self.entry.pretrade.reservation(successor, context, open_orders)
            )
            await self.entry.pretrade.risk_check(successor, context, open_orders)
        # else: an exit leg is reduce-only; it reserves nothing and needs no risk check.
        await self.entry.book_instrument(instrument)
        async with self.live.lock:
            async with self._out_of_book(account_id, order_id, is_admin) as (_, conn, current):
                at = now_ns()
                was_held = current.status is OrderStatus.HELD
                released = current.replace_by(successor.order_id, at)
                await self.stores.accounts.release_and_sequence(
                    conn, current.account_id, released, 0
                )
                sequence = await self.stores.accounts.reserve_buying_power(
                    conn, current.account_id, successor.reserved, 2
                )
                if sequence is None:
                    raise FailedPrecondition(
                        f"Insufficient buying power: the replacement needs {format_decimal(successor.reserved)}.",
                        reason="INSUFFICIENT_BUYING_POWER",
                    )
                await self.stores.orders.close_order(
                    conn,
                    order_id,
                    OrderStatus.REPLACED,
                    "replaced",
                    to_datetime(at),
                    successor.order_id,
                )
                if was_held:
                    successor.hold(at)
                else:
                    successor.accept(at)
                await self.stores.orders.insert_order(conn, successor)
                first = await self.journal.emit_order_event(
                    conn, current, OrderEventKind.REPLACED, sequence - 1
                )
                second = await self.journal.emit_order_event(
                    conn, successor, OrderEventKind.NEW, sequence
                )
            self.subscriptions.notify(current.account_id, first)
            self.subscriptions.notify(current.account_id, second)
            await self.journal.persist(self.live.engine.replaced(order_id, successor, now_ns()))
        return successor


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
