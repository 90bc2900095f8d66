"""Order entry: SubmitOrder for a simple order, all or nothing.

Validate, risk-check, then reserve and persist in one statement. Concurrent
submits share their two statements (`entry_statements.py`): one batched read of
account figures and one batched write that reserves and inserts. Written orders enter the
book in batches (group commit): one hold of the engine lock books every order
that arrived while the previous batch was committing, and persists what they
produced (a market order's fill) with one transaction per account. The commit of
a new order happens outside the lock (that is what lets submits run in parallel);
an order canceled in that gap is remembered so it never enters the book.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections import defaultdict
from decimal import Decimal

from cift.runtime.coalesce import Coalescer
from cift.runtime.errors import DomainError, FailedPrecondition
from cift.runtime.money import format_decimal
from cift.runtime.timestamps import now_ns
from cift.trading.fills import (
    EngineEvent,
    Fill,
    OpenOrders,
)
from cift.trading.ledger import buying_power
from cift.trading.orders import (
    Order,
    OrderRequest,
    new_order,
    resolve_resubmission,
)
from cift.trading.vocabulary import ZERO, Instrument
from services.execution.app.entry_stages import SUBMIT_STAGES
from services.execution.app.entry_statements import EntryStatements
from services.execution.app.journal import Filled, Journal, Journaled
from services.execution.app.live import LiveBook
from services.execution.app.ports import AccountSettings, Market, OrderContext
from services.execution.app.pretrade import PreTrade
from services.execution.app.store_ports import (
    Connection,
    Database,
    DuplicateClientOrderId,
    Stores,
    TakenFill,
)
from services.execution.app.subscriptions import Subscriptions

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    """A submitted order as it entered the book."""

    order: Order
    # As its fill left it, when its booking filled it completely (a market order
    # that filled at once): final, written with the fill, so the reply can say it.
    completed: Filled | None = None


class OrderEntry:
    def __init__(
        self,
        pool: Database,
        stores: Stores,
        live: LiveBook,
        market: Market,
        pretrade: PreTrade,
        journal: Journal,
        subscriptions: Subscriptions,
        settings: AccountSettings,
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.live = live
        self.market = market
        self.pretrade = pretrade
        self.journal = journal
        self.subscriptions = subscriptions
        self.settings = settings
        self._known_accounts: set[str] = set()
        # Per written order until its booking: the figures its fill, if the booking
        # fills it at once, expects to find (the order as written, the account and
        # position as its entry read them).
        self._expected: dict[str, TakenFill] = {}
        self._statements = EntryStatements(pool, stores)
        # Orders written while a booking batch holds the lock wait to form the next one.
        self._bookings: Coalescer[Order, Filled | None] = Coalescer(
            self._book_orders, name="booking", max_batch=256, max_in_flight=1
        )

    async def ensure_account(self, account_id: str) -> None:
        """Open the paper account the first time an account id is seen (idempotent)."""
        if account_id in self._known_accounts:
            return
        async with self.pool.acquire() as conn:
            cash, multiplier = self.settings.opening_cash, self.settings.margin_multiplier
            await self.stores.accounts.open_account(
                conn,
                account_id,
                cash,
                multiplier,
                buying_power(cash, Decimal(0), Decimal(0), multiplier),
            )
        self._known_accounts.add(account_id)

    async def submit(self, account_id: str, request: OrderRequest) -> Order:
        """The order `place` put in the book."""
        return (await self.place(account_id, request)).order

    async def place(self, account_id: str, request: OrderRequest) -> Placed:
        """Validate, risk-check, then reserve and persist in one statement; all or nothing.

        Two database round trips in the common case: one read (account figures,
        the position and an earlier order under the same client id) and one write
        (`OrderStore.submit_orders`). The risk check sits between them. Open orders
        come from the engine's memory; the account and symbol stay held until the
        order is in the book, so the next entry for them counts it.
        """
        await self.ensure_account(account_id)
        instrument = await self.market.instrument(request.symbol)
        if not request.client_order_id:
            request = dataclasses.replace(request, client_order_id=str(uuid.uuid4()))
        order = new_order(
            request, instrument, order_id=str(uuid.uuid4()), account_id=account_id, now_ns=now_ns()
        )
        release = await self.live.entries.acquire((account_id, request.symbol))
        handed_over = False
        try:
            open_orders = await self.open_orders(account_id, request.symbol)
            with SUBMIT_STAGES.time("context"):
                context = await self._statements.context(
                    (account_id, request.symbol, request.client_order_id)
                )
            if context.existing_order_id is not None:
                async with self.pool.acquire() as conn:
                    return Placed(await self.resubmission(conn, account_id, request))
            order.reserve(await self.pretrade.reservation(order, context, open_orders))
            with SUBMIT_STAGES.time("risk"):
                await self.pretrade.risk_check(order, context, open_orders)
            await self.book_instrument(instrument)
            order.accept(order.created_ns)
            # Once written, the order must reach the book even if this caller goes
            # away (deadline, disconnect): the write and the booking run as their own
            # task, and the entry stays held until that task is done.
            entry = asyncio.ensure_future(self._write_and_book(account_id, request, order, context))
            entry.add_done_callback(lambda _: release())
            handed_over = True
        finally:
            if not handed_over:
                release()
        return await asyncio.shield(entry)

    async def open_orders(self, account_id: str, symbol: str, excluding: str = "") -> OpenOrders:
        """The engine's open orders, read before the database's position, never during a fill.

        The engine lock is held from a fill's decision to its commit; outside it
        the engine matches the committed ledger. Fills committed after this read
        and before the position is read only lower the position and the open
        quantity together, so the reservation can come out too high, never too low.
        """
        async with self.live.lock:
            return self.live.engine.open_orders_of(account_id, symbol, excluding=excluding)

    async def _write_and_book(
        self, account_id: str, request: OrderRequest, order: Order, context: OrderContext
    ) -> Placed:
        # The account's next event sequence as read; the write checks it still is.
        try:
            with SUBMIT_STAGES.time("write"):
                written = await self._statements.write(order, context.event_seq + 1)
        except DuplicateClientOrderId:
            # The same client_order_id raced in from another call: answer as a resubmission.
            async with self.pool.acquire() as conn:
                return Placed(await self.resubmission(conn, account_id, request))
        except DomainError:
            raise  # refused: nothing was written
        except Exception:
            # The reply was lost, not necessarily the commit (the connection broke
            # after it): if the row is there once the database answers, it is booked.
            self.live.book_if_written([order.order_id])
            raise
        if written is None:
            raise FailedPrecondition(
                f"Insufficient buying power: this order needs {format_decimal(order.reserved)}.",
                reason="INSUFFICIENT_BUYING_POWER",
            )
        sequence, payload = written
        self.subscriptions.notify(account_id, payload)
        if context.balances is not None and context.position is not None:
            self._expected[order.order_id] = TakenFill(
                context.position, dataclasses.replace(order), context.balances, sequence, ZERO
            )
        with SUBMIT_STAGES.time("book"):
            return Placed(order, await self._bookings.submit(order))

    async def _book_orders(self, orders: list[Order]) -> list[BaseException | Filled | None]:
        """Put written orders in the book and persist what that produced, under one lock hold.

        The lock still spans every commit, so a cancel or a tick never slips between
        a fill's decision and its commit. An order's events concern only its own
        account; each account's share of the batch is one transaction, in arrival
        order, and the accounts' transactions run concurrently. Each transaction
        touches a single account row, as a lone fill does, so lock order against the
        multi-account submit statement is unchanged (no new deadlock).
        """
        results: list[BaseException | Filled | None] = [None] * len(orders)
        completed: dict[str, Filled] = {}
        by_account: dict[str, list[tuple[int, list[EngineEvent]]]] = defaultdict(list)
        expected = {o.order_id: self._expected.pop(o.order_id, None) for o in orders}
        async with self.live.lock:
            for index, order in enumerate(orders):
                if order.order_id in self.live.canceled_before_booked:
                    self.live.canceled_before_booked.discard(order.order_id)
                    continue
                try:
                    produced = self.live.engine.add(order, now_ns())
                except Exception as refused:
                    results[index] = refused
                    continue
                if produced:
                    by_account[order.account_id].append((index, produced))
            await asyncio.gather(
                *(
                    self._persist_account(items, results, completed, expected)
                    for items in by_account.values()
                )
            )
        return [
            completed.get(order.order_id) if result is None else result
            for order, result in zip(orders, results, strict=True)
        ]

    async def _persist_account(
        self,
        items: list[tuple[int, list[EngineEvent]]],
        results: list[BaseException | Filled | None],
        completed: dict[str, Filled],
        expected: dict[str, TakenFill | None],
    ) -> None:
        """One account's share of a booking batch in one transaction; alone per order on failure.

        A failed transaction wrote nothing, so retrying its orders one by one
        isolates the failing order: the others still commit, and only its caller
        sees the error (as when each order committed alone); its order leaves the
        book to be booked again from its row. Orders the committed fills completed
        go in `completed`.

        The common share, one new order that filled at once, is one statement: its
        fill settled from the figures `expected` for it, written only if the rows
        still hold them (else the transaction below).
        """
        index, produced = items[0]
        fill = produced[0]
        if len(items) == 1 and len(produced) == 1 and isinstance(fill, Fill):
            taken = expected.get(fill.order_id)
            if taken is not None:
                try:
                    async with self.pool.acquire() as conn:
                        booked = await self.journal.persist_expected(conn, fill, taken)
                except Exception as failure:
                    self._unwritten(index, produced, failure, results)
                    return
                if booked is not None:
                    self._committed([booked], completed)
                    return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                journaled = [await self.journal.persist_on(conn, p) for _, p in items]
        except Exception as failure:
            if len(items) == 1:
                self._unwritten(index, produced, failure, results)
                return
            for index, produced in items:
                try:
                    async with self.pool.acquire() as conn, conn.transaction():
                        alone = await self.journal.persist_on(conn, produced)
                except Exception as refused:
                    self._unwritten(index, produced, refused, results)
                    continue
                self._committed([alone], completed)
            return
        self._committed(journaled, completed)

    def _unwritten(
        self,
        index: int,
        produced: list[EngineEvent],
        failure: Exception,
        results: list[BaseException | Filled | None],
    ) -> None:
        """The booking's events did not commit: its caller gets the error, and the order,
        accepted in the database, leaves the book until `restore.py` books it again."""
        results[index] = failure
        self.live.drop_unwritten(produced)

    def _committed(self, journaled: list[Journaled], completed: dict[str, Filled]) -> None:
        for written in journaled:
            self.subscriptions.notify_all(written.notices)
            completed.update(written.completed)

    async def book_instrument(self, instrument: Instrument) -> None:
        """Give the engine the symbol's rules; saved once per change so a restart can reload."""
        if self.live.saved_instruments.get(instrument.symbol) != instrument:
            async with self.pool.acquire() as conn:
                await self.stores.orders.save_instrument(conn, instrument)
            self.live.saved_instruments[instrument.symbol] = instrument
        self.live.engine.set_instrument(instrument)

    async def resubmission(self, conn: Connection, account_id: str, request: OrderRequest) -> Order:
        existing = await self.stores.orders.get_order_by_client_id(
            conn, account_id, request.client_order_id
        )
        assert existing is not None
        return resolve_resubmission(self.stores.orders.order_from_row(existing), request)
