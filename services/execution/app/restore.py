"""Orders back in the book from their rows: the whole book at start, and the orders a failed commit left out.

The engine decides a fill (or a close, or an exit's release) and then the journal
commits it. When the commit fails, because PostgreSQL died or the connection
broke between the two, the engine has moved on and the database has not: the
order is still `accepted` in its row while the engine counts it filled.
`LiveBook.drop_unwritten` takes such orders (with their groups) out of the book,
and `run_repairs` books them again from their rows once the database answers,
the same way a restart does. An order the commit did write after all (the
connection broke after the commit) comes back as its row says: filled, it stays
out; partly filled, it works for the rest. Fill ids are deterministic, so no fill
is ever written twice.

An order's own write can fail the same way: the connection breaks after the
commit, so the caller gets an error for an order that exists. Its id is handed
to the repair too (`LiveBook.book_if_written`), which books it if its row is
there and open, and forgets it if not.

Until restored, such an order is out of the book: a tick cannot fill it, and a
cancel closes its row as for an order canceled before its booking.
"""

from __future__ import annotations

import asyncio
import logging

from cift.runtime.timestamps import now_ns
from services.execution.app.group_entry import reload_groups
from services.execution.app.journal import Journal
from services.execution.app.live import LiveBook
from services.execution.app.ports import Market
from services.execution.app.store_ports import Database, Row, Stores

log = logging.getLogger(__name__)

# Retry delays of a repair while the database does not answer: quick at first (a
# broken connection is replaced at once), then at most every few seconds.
FIRST_RETRY_S = 0.2
LAST_RETRY_S = 3.0


class BookRestore:
    def __init__(
        self, pool: Database, stores: Stores, live: LiveBook, market: Market, journal: Journal
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.live = live
        self.market = market
        self.journal = journal

    async def from_rows(self, rows: list[Row]) -> int:
        """Book the open orders of `rows` the engine lacks, with their groups; returns how many.

        Called under the engine lock. Should booking fail half way (a fill it
        makes cannot commit), every order it took in leaves the book again, so
        a group never comes back in part.
        """
        orders = [self.stores.orders.order_from_row(row) for row in rows]
        loaded = [o for o in orders if o.is_open and o.order_id not in self.live.engine]
        loaded_ids = {order.order_id for order in loaded}
        try:
            for order in loaded:
                instrument = self.live.saved_instruments.get(order.symbol)
                if instrument is None:
                    # Accepted before instruments were saved: ask market data (this
                    # needs it to answer without a caller's credential).
                    instrument = await self.market.instrument(order.symbol)
                self.live.engine.set_instrument(instrument)
            for order in await reload_groups(
                self.pool, self.stores.orders, self.live.engine, loaded
            ):
                await self.journal.persist(self.live.engine.add(order, now_ns()))
        except BaseException:
            self.live.unwritten |= self.live.engine.forget(loaded_ids)
            raise
        return len(loaded)

    async def unwritten(self) -> int:
        """Book again the orders out of the book (`LiveBook.unwritten`); returns how many are back.

        Their rows are read under the engine lock, so a cancel that committed
        meanwhile is seen and the order stays out.
        """
        async with self.live.lock:
            order_ids = sorted(self.live.unwritten)
            if not order_ids:
                return 0
            async with self.pool.acquire() as conn:
                rows = [await self.stores.orders.get_order(conn, oid) for oid in order_ids]
            present = [row for row in rows if row is not None]
            self.live.unwritten.difference_update(order_ids)
            # Closed while out of the book: never booked again, so nothing waits for it.
            self.live.canceled_before_booked.difference_update(order_ids)
            return await self.from_rows(present)

    async def run_repairs(self) -> None:
        """Restore unwritten orders whenever there are some, retrying until the database answers."""
        while True:
            await self.live.repair_due.wait()
            self.live.repair_due.clear()
            delay = FIRST_RETRY_S
            while self.live.unwritten:
                waiting = len(self.live.unwritten)
                try:
                    restored = await self.unwritten()
                except Exception as error:
                    log.warning(
                        "orders out of the book after a failed commit; retrying their restore",
                        extra={"orders": waiting, "retry_s": delay, "error": repr(error)},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, LAST_RETRY_S)
                    continue
                log.warning(
                    "orders out of the book after a failed commit are restored",
                    extra={"orders": waiting, "booked_again": restored},
                )
