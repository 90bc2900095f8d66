"""The journal: what the fill engine produced, written as one transaction each.

A fill (position, cash, realized P&L, order totals, activity, outbox; idempotent by
fill id), an order closed by the engine (expired, canceled by its OCO sibling), an
exit leg released by its entry's fill, a stop triggered. Every path that changes an
order in the database and announces it goes through `emit_order_event`, so an order
event is stored, put in the outbox and handed to subscribers the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from cift.runtime.timestamps import to_datetime
from cift.trading.fills import (
    EngineEvent,
    Fill,
    LegReleased,
    OrderClosed,
    OrderTriggered,
)
from cift.trading.ledger import (
    released_reservation,
    settle_fill,
)
from cift.trading.orders import (
    Order,
    OrderStatus,
)
from services.execution.app.live import LiveBook
from services.execution.app.ports import OrderEventKind
from services.execution.app.store_ports import (
    Booking,
    Connection,
    Database,
    OutgoingEvent,
    SettledFill,
    Stores,
    TakenFill,
)
from services.execution.app.subscriptions import Subscriptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Filled:
    """An order as one fill left it, written with that fill."""

    order: Order
    commission: Decimal  # the order's commission so far
    payload: bytes  # the order event announcing the fill, for the subscribers once committed


@dataclass(slots=True)
class Journaled:
    """What one transaction's engine events wrote."""

    # (account id, order event bytes) to hand the subscribers once committed.
    notices: list[tuple[str, bytes]] = field(default_factory=list)
    # Orders a fill of the transaction completed, as it left them: final (a filled
    # order changes no more), so their reply needs no read back.
    completed: dict[str, Filled] = field(default_factory=dict)


class Journal:
    """Writes engine events; the caller holds the engine lock (`LiveBook.lock`)."""

    def __init__(
        self, pool: Database, stores: Stores, live: LiveBook, subscriptions: Subscriptions
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.live = live
        self.subscriptions = subscriptions

    async def persist(
        self, produced: list[EngineEvent], tick_mark: tuple[str, int] | None = None
    ) -> None:
        """Persist engine events, each account's in one transaction (ticks, closes, restarts).

        An account's events stand or fall together: an entry's fill and the exits it
        releases are never half written. Events of an account whose commit fails
        leave the book (`LiveBook.drop_unwritten`) and the error is raised once
        every account had its try, so the other accounts' fills still commit.
        """
        failure: Exception | None = None
        for events in by_account(produced):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    journaled = await self.persist_on(conn, events, tick_mark)
            except Exception as error:
                self.live.drop_unwritten(events)
                failure = failure or error
                continue
            self.subscriptions.notify_all(journaled.notices)
        if failure is not None:
            raise failure

    async def persist_on(
        self,
        conn: Connection,
        produced: list[EngineEvent],
        tick_mark: tuple[str, int] | None = None,
    ) -> Journaled:
        """Write `produced` inside the caller's transaction."""
        journaled = Journaled()
        for event in produced:
            if isinstance(event, Fill):
                filled = await self.apply_fill_on(conn, event, tick_mark)
                if filled is not None:
                    journaled.notices.append((event.account_id, filled.payload))
                    if filled.order.status is OrderStatus.FILLED:
                        journaled.completed[event.order_id] = filled
            elif isinstance(event, OrderClosed):
                closed = await self.record_close_on(conn, event)
                if closed is not None:
                    journaled.notices.append(closed)
            elif isinstance(event, LegReleased):
                journaled.notices.append(await self.record_release_on(conn, event))
            elif isinstance(event, OrderTriggered):
                await self.stores.orders.mark_triggered(
                    conn, event.order_id, event.water_mark, to_datetime(event.ts_ns)
                )
        return journaled

    async def apply_fill(self, fill: Fill, tick_mark: tuple[str, int] | None = None) -> bool:
        """Apply one fill in one transaction; False (and no change) if it was applied before."""
        async with self.pool.acquire() as conn, conn.transaction():
            filled = await self.apply_fill_on(conn, fill, tick_mark)
        if filled is None:
            return False
        self.subscriptions.notify(fill.account_id, filled.payload)
        return True

    async def apply_fill_on(
        self, conn: Connection, fill: Fill, tick_mark: tuple[str, int] | None
    ) -> Filled | None:
        """A fill's whole effect inside the caller's transaction; None if applied before.

        Two statements: `take_fill` records the fill and locks what it changes, and
        `book_fill` writes what is computed here from those locked figures, so every
        figure and byte is final before the write.
        """
        at = to_datetime(fill.ts_ns)
        taken = await self.stores.fills.take_fill(conn, fill, at)
        if taken is None:
            return None
        settled, events, filled = self._settle(fill, taken, at)
        await self.stores.fills.book_fill(conn, settled, events, tick_mark)
        return filled

    async def persist_expected(
        self, conn: Connection, fill: Fill, expected: TakenFill
    ) -> Journaled | None:
        """A fill settled from the figures it is expected to find, written in one statement.

        For a fill the booking of a new order produced: the order as written and the
        account and position as its entry read them are what the fill finds unless
        something else of the account happened meanwhile. One statement outside any
        transaction records and books it only if the rows still hold those figures;
        None when they do not (nothing was written: persist it the usual way).
        """
        at = to_datetime(fill.ts_ns)
        # Settled on a copy: the statement compares the rows with the order before it.
        finding = dataclasses.replace(expected, order=dataclasses.replace(expected.order))
        settled, events, filled = self._settle(fill, finding, at)
        booking = await self.stores.fills.book_expected_fill(conn, expected, settled, events)
        if booking is Booking.MOVED:
            return None
        journaled = Journaled()
        if booking is Booking.BOOKED:
            journaled.notices.append((fill.account_id, filled.payload))
            if filled.order.status is OrderStatus.FILLED:
                journaled.completed[fill.order_id] = filled
        return journaled

    def _settle(
        self, fill: Fill, taken: TakenFill, at: datetime
    ) -> tuple[SettledFill, tuple[OutgoingEvent, OutgoingEvent], Filled]:
        """The fill applied to the figures it finds (`taken.order` becomes the order after
        it): the ledger's settlement and buying power, and its events with the sequence
        after the account's."""
        effect = settle_fill(taken.position, fill.side, fill.qty, fill.price, fill.commission)
        before = taken.order
        if before.qty is not None:
            remaining_before = before.qty - before.filled_qty
            part = fill.qty
        else:
            assert before.notional is not None
            remaining_before = before.notional - before.filled_notional
            part = fill.qty * fill.price
        released = (
            before.reserved
            if fill.order_status is not OrderStatus.PARTIALLY_FILLED
            else released_reservation(before.reserved, part, remaining_before)
        )
        after = before
        after.apply_fill(
            fill.order_status,
            fill.order_filled_qty,
            fill.order_filled_notional,
            fill.order_fill_count,
            fill.ts_ns,
            released,
        )
        balances = taken.balances.after(effect)
        kind = (
            OrderEventKind.FILL
            if fill.order_status is OrderStatus.FILLED
            else OrderEventKind.PARTIAL_FILL
        )
        commission = taken.commission + fill.commission
        order_event = self.stores.outbox.order_event_row(
            after, kind, taken.event_seq + 1, fill=fill, commission=commission
        )
        fill_event = self.stores.outbox.fill_event_row(fill, effect.position, balances.cash)
        settled = SettledFill(fill, effect, after, released, at, balances.buying_power)
        return settled, (order_event, fill_event), Filled(after, commission, order_event.payload)

    async def record_release_on(self, conn: Connection, event: LegReleased) -> tuple[str, bytes]:
        """An exit leg released (or grown) by its entry's fill: its size and status, announced."""
        at = to_datetime(event.ts_ns)
        await self.stores.orders.release_leg(conn, event.order_id, event.qty, at)
        row = await self.stores.orders.get_order(conn, event.order_id)
        assert row is not None
        order = self.stores.orders.order_from_row(row)
        sequence = await self.stores.accounts.release_and_sequence(
            conn, order.account_id, Decimal(0), 1
        )
        payload = await self.emit_order_event(conn, order, OrderEventKind.ACCEPTED, sequence)
        return order.account_id, payload

    async def record_close_on(
        self, conn: Connection, event: OrderClosed
    ) -> tuple[str, bytes] | None:
        """Close an order inside the caller's transaction; None if it was closed already."""
        at = to_datetime(event.ts_ns)
        row = await self.stores.orders.get_order(conn, event.order_id, for_update=True)
        assert row is not None
        order = self.stores.orders.order_from_row(row)
        if not order.is_open:
            return None
        reserved = order.close(event.status, event.ts_ns, event.reason)
        await self.stores.orders.close_order(conn, event.order_id, event.status, event.reason, at)
        sequence = await self.stores.accounts.release_and_sequence(
            conn, order.account_id, reserved, 1
        )
        payload = await self.emit_order_event(conn, order, CLOSING_EVENT[event.status], sequence)
        return order.account_id, payload

    async def emit_order_event(
        self, conn: Connection, order: Order, kind: OrderEventKind, sequence: int
    ) -> bytes:
        """Store and queue an order's event; its bytes, for the subscribers once committed."""
        event = self.stores.outbox.order_event_row(order, kind, sequence)
        await self.stores.orders.record_order_event(conn, order.account_id, event)
        return event.payload


# The event announcing each way an order closes.
CLOSING_EVENT = {
    OrderStatus.CANCELED: OrderEventKind.CANCELED,
    OrderStatus.EXPIRED: OrderEventKind.EXPIRED,
    OrderStatus.REJECTED: OrderEventKind.REJECTED,
    OrderStatus.REPLACED: OrderEventKind.REPLACED,
    OrderStatus.FILLED: OrderEventKind.FILL,
}


def by_account(produced: list[EngineEvent]) -> list[list[EngineEvent]]:
    """`produced` split by account, in order within each account and of first appearance."""
    accounts: dict[str, list[EngineEvent]] = {}
    for event in produced:
        accounts.setdefault(event.account_id, []).append(event)
    return list(accounts.values())
