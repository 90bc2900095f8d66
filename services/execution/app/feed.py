"""Market feed intake: ticks into the fill engine, the session's open and close, restarts.

A tick already applied (its per-symbol sequence at or below the durable mark kept
with the fills it caused) is skipped, so a redelivered batch changes nothing.
"""

from __future__ import annotations

import logging

from cift.runtime.timestamps import now_ns
from cift.trading.fills import Quote, SessionPhase, Trade
from services.execution.app.journal import Journal
from services.execution.app.live import LiveBook
from services.execution.app.restore import BookRestore
from services.execution.app.store_ports import Database, Stores

log = logging.getLogger(__name__)


class FeedIntake:
    def __init__(
        self, pool: Database, stores: Stores, live: LiveBook, journal: Journal, restore: BookRestore
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.live = live
        self.journal = journal
        self.restore = restore

    async def on_ticks(self, ticks: list[tuple[Quote | Trade, int]]) -> None:
        """Feed decoded ticks (each with its per-symbol sequence) to the engine; persist what fills."""
        async with self.live.lock:
            for tick, sequence in ticks:
                if sequence and sequence <= self.live.tick_marks.get(tick.symbol, 0):
                    continue  # redelivered: its effects are already applied
                self.live.tick_marks[tick.symbol] = sequence
                produced = (
                    self.live.engine.on_quote(tick)
                    if isinstance(tick, Quote)
                    else self.live.engine.on_trade(tick)
                )
                if produced:
                    await self.journal.persist(produced, tick_mark=(tick.symbol, sequence))

    async def reload(self) -> int:
        """Rebuild the book from the database after a restart; returns the orders reloaded.

        Accounts opened before buying power was stored with them get it first, from
        the ledger, so no reservation waits for their next fill.
        """
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                unpriced = await self.stores.accounts.unpriced_balances(conn)
                await self.stores.accounts.store_buying_power(
                    conn, {account: b.buying_power for account, b in unpriced.items()}
                )
            rows = await self.stores.orders.open_orders(conn)
            self.live.tick_marks = await self.stores.fills.tick_marks(conn)
            self.live.saved_instruments = await self.stores.orders.instruments(conn)
        async with self.live.lock:
            await self.restore.from_rows(rows)
        return len(rows)

    async def save_water_marks(self) -> int:
        """Persist the trailing-stop water marks that moved since the last call (one batch)."""
        marks = self.live.engine.take_water_marks()
        if marks:
            try:
                async with self.pool.acquire() as conn:
                    await self.stores.orders.save_water_marks(conn, marks)
            except BaseException:
                self.live.engine.unsaved_water_marks(marks)  # the next interval tries again
                raise
        return len(marks)

    async def expire_day_orders(self, *, post_market: bool = False) -> int:
        """The session closed: closing auction, day orders expire (extended ones at post_market)."""
        async with self.live.lock:
            produced = self.live.engine.close_session(now_ns(), post_market=post_market)
            await self.journal.persist(produced)
        return len(produced)

    async def expire_missed_close(self, placed_before_ns: int, *, post_market_ended: bool) -> int:
        """A close passed while this process was down: its session's orders expire now."""
        async with self.live.lock:
            produced = self.live.engine.expire_missed_close(
                placed_before_ns, now_ns(), post_market_ended=post_market_ended
            )
            await self.journal.persist(produced)
        return len(produced)

    async def open_session(self) -> None:
        """The session opened: each symbol's next trade is its opening auction print."""
        async with self.live.lock:
            self.live.engine.open_session()

    async def set_phase(self, phase: SessionPhase) -> None:
        """The market clock's session phase: which orders the next ticks may fill."""
        async with self.live.lock:
            self.live.engine.set_phase(phase)

    async def expire_due(self, market_now_ns: int) -> int:
        """Expire gtd orders whose expire_at the market clock (not this host's) has reached.

        In replay the market clock runs offset from the wall clock
        (CIFT_MARKETDATA_CLOCK_START), and expire_at is a market instant.
        """
        async with self.live.lock:
            produced = self.live.engine.expire_due(market_now_ns)
            await self.journal.persist(produced)
        return len(produced)
