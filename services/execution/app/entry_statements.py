"""The two statements concurrent submits share: one read of account figures, one write.

Order entry's round trips are the cost of a submit, so submits arriving together
are coalesced (`cift.runtime.coalesce`) into one batched read of their accounts'
figures and one batched write that reserves and inserts. Kept apart from the use
case so that `OrderEntry` reads as the steps of one submit, and the batching (and
its retry when an account's event sequence moves) is read in one place.
"""

from __future__ import annotations

from cift.runtime.coalesce import Coalescer
from cift.runtime.errors import Unavailable
from cift.trading.orders import Order
from services.execution.app.ports import OrderContext, OrderEventKind
from services.execution.app.store_ports import (
    Connection,
    Database,
    DuplicateClientOrderId,
    Outbox,
    OutgoingEvent,
    StaleSequence,
    Stores,
)

# Times one order's write is tried again because its account's event sequence moved
# (another event of the account committed meanwhile) before giving up.
SEQUENCE_ATTEMPTS = 8


class EntryStatements:
    def __init__(self, pool: Database, stores: Stores) -> None:
        self._pool = pool
        self._stores = stores
        # Concurrent submits share their two statements (see coalesce.py); a write
        # batch holds one order per account, as its UPDATE changes each row once.
        # One batch in flight each: under load the next batch then gathers every
        # arrival of a whole round trip. Three in flight made batches of 1.5-1.9
        # orders instead of 1.9-3.9, which cost more CPU per order than they saved
        # in waiting (bench/REPORT-execution.md).
        self._contexts: Coalescer[tuple[str, str, str], OrderContext] = Coalescer(
            self._read_contexts, name="context_read", max_batch=128, max_in_flight=1
        )
        self._writes: Coalescer[tuple[Order, int], tuple[int, bytes] | None] = Coalescer(
            self._write_orders,
            name="order_write",
            max_batch=128,
            max_in_flight=1,
            key=lambda item: item[0].account_id,
        )

    async def context(self, key: tuple[str, str, str]) -> OrderContext:
        """The account figures, position and earlier order for (account, symbol, client id)."""
        return await self._contexts.submit(key)

    async def write(self, order: Order, sequence: int) -> tuple[int, bytes] | None:
        """Reserve and insert; the event's sequence and bytes, or None when buying power is short.

        Raises DuplicateClientOrderId when the client id raced in from another call.
        """
        return await self._writes.submit((order, sequence))

    async def _read_contexts(
        self, wanted: list[tuple[str, str, str]]
    ) -> list[OrderContext | BaseException]:
        async with self._pool.acquire() as conn:
            return list(await self._stores.accounts.order_contexts(conn, wanted))

    async def _write_orders(
        self, batch: list[tuple[Order, int]]
    ) -> list[tuple[int, bytes] | BaseException | None]:
        """Reserve and persist concurrent submits (distinct accounts) in one statement.

        Each answer is the written event's sequence and bytes, None when buying
        power falls short, or the order's own error. An order whose account's
        sequence moved since it was read is written again alone, numbered after the
        sequence the statement found.
        """
        async with self._pool.acquire() as conn:
            if len(batch) > 1:
                rows = [
                    (order, _new_event(self._stores.outbox, order, sequence))
                    for order, sequence in batch
                ]
                try:
                    written = await self._stores.orders.submit_orders(conn, rows)
                except DuplicateClientOrderId:
                    pass  # one of them reuses a client_order_id: settle each alone
                else:
                    results: list[tuple[int, bytes] | BaseException | None] = []
                    for order, event in rows:
                        outcome = written[order.order_id]
                        if isinstance(outcome, StaleSequence):
                            results.append(
                                await self._write_alone(conn, order, outcome.next_sequence)
                            )
                        else:
                            results.append(None if outcome is None else (outcome, event.payload))
                    return results
            return [await self._write_alone(conn, order, sequence) for order, sequence in batch]

    async def _write_alone(
        self, conn: Connection, order: Order, sequence: int
    ) -> tuple[int, bytes] | BaseException | None:
        """One order's write, its event numbered again for as long as its account moves on."""
        for _ in range(SEQUENCE_ATTEMPTS):
            event = _new_event(self._stores.outbox, order, sequence)
            try:
                written = await self._stores.orders.submit_orders(conn, [(order, event)])
            except DuplicateClientOrderId as duplicate:
                refused: BaseException = duplicate  # answered as a resubmission by the caller
                return refused
            outcome = written[order.order_id]
            if not isinstance(outcome, StaleSequence):
                return None if outcome is None else (outcome, event.payload)
            sequence = outcome.next_sequence
        return Unavailable(
            f"Account {order.account_id} changed on every attempt to place this order; try again."
        )


def _new_event(outbox: Outbox, order: Order, sequence: int) -> OutgoingEvent:
    return outbox.order_event_row(order, OrderEventKind.NEW, sequence)
