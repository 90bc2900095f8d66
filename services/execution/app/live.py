"""The live book: the in-memory fill engine and the state that guards it.

The engine and the database are kept in step by one lock (`lock`): every engine
mutation and the persistence of what it produced happen under it, so a cancel can
never slip between a fill's decision and its commit. `entries` holds an (account,
symbol) from an entry's read of open orders until the order is in the book.
Shared by the use cases that touch the engine; owned by none of them.

When what the engine produced fails to commit (the database went away between
an order's decision and its commit), the engine has moved on and the database
has not: `drop_unwritten` takes those orders out of the book and `restore.py`
loads them back from their rows once the database answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from cift.runtime.keyed_locks import KeyedLocks
from cift.trading.fills import EngineEvent, FillEngine
from cift.trading.vocabulary import Instrument


@dataclass(slots=True)
class LiveBook:
    engine: FillEngine
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    entries: KeyedLocks[tuple[str, str]] = field(default_factory=KeyedLocks)
    # Orders canceled between their commit and their booking: never booked.
    canceled_before_booked: set[str] = field(default_factory=set)
    # Per symbol, the last tick sequence applied (durable with the fills it caused).
    tick_marks: dict[str, int] = field(default_factory=dict)
    # Instruments as last saved, so a restart can reload the book without market data.
    saved_instruments: dict[str, Instrument] = field(default_factory=dict)
    # Orders out of the book until restored from their rows: their events did not
    # commit, or their own write's reply was lost (the row may or may not exist).
    unwritten: set[str] = field(default_factory=set)
    # Set when `unwritten` grows: the repair task's wake-up.
    repair_due: asyncio.Event = field(default_factory=asyncio.Event)

    def drop_unwritten(self, events: Iterable[EngineEvent]) -> None:
        """The commit of `events` failed: their orders leave the book until restored from their rows."""
        dropped = self.engine.forget({event.order_id for event in events})
        if dropped:
            self.unwritten |= dropped
            self.repair_due.set()

    def book_if_written(self, order_ids: Iterable[str]) -> None:
        """Writes whose reply was lost, not necessarily their commit: the repair books
        each of these orders whose row turns out to exist, open."""
        self.unwritten.update(order_ids)
        self.repair_due.set()
