"""Fan-out of live market data to stream subscribers without letting one slow the rest.

Design: each stream kind (quotes, trades, bars) has one shared, bounded log, a ring
of the last `capacity` items with consecutive sequence numbers. Publishing writes
the ring once, whatever the number of subscribers, and wakes the idle ones; a
subscriber is only a cursor into the ring plus its filter. So the feed never waits
for a client, and a stalled client costs nothing but its cursor.

Buffer policy, per subscriber (the ring is the buffer; its capacity is the bound):
- conflating logs (quotes): a subscriber that falls behind receives only the latest
  quote per symbol, in sequence order; if it falls further behind than the ring, it
  receives the log's latest-quote-per-symbol snapshot. It never receives a stale
  quote after a fresher one. Skipped quotes are counted in `conflated`.
- dropping logs (trades, bars): a subscriber that falls behind by more than the
  ring loses the oldest items; the number lost is counted in `dropped` and reported
  with the next delivery, so the client knows it has a gap.

Batching: `take(max_items)` returns several items for one stream message.

Resume: items carry increasing sequence numbers (a tick's log sequence, or the log's
own position when items have none), and every delivery reports the sequence of the
last item it covered. A client that reconnects with that number gets everything
after it still in the ring; if the ring no longer reaches back that far (or this
process started after it), the first delivery says so with `gap`.

Pure logic: no I/O; the server wires `on_ready` to wake its stream task.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cift.runtime.errors import InvalidArgument, ResourceExhausted

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    """One batch for one subscriber."""

    items: list[T]
    seqs: list[int]
    # Sequence of the last item this delivery covered, including items the filter skipped.
    position: int
    # Items lost (dropping logs) or skipped as superseded (conflating logs) before this batch.
    dropped: int
    conflated: int
    # True when the subscriber resumed from a sequence the ring no longer reaches.
    gap: bool


@dataclass(eq=False)
class Subscription(Generic[T]):
    """One client's position in a log and what it wants from it."""

    log: StreamLog[T]
    symbols: frozenset[str] | None
    predicate: Callable[[T], bool] | None
    cursor: int
    on_ready: Callable[[], None] | None
    # Sequence of the last item this subscriber has been past (what a client resumes from).
    position: int = 0
    dropped: int = 0
    conflated: int = 0
    gap: bool = False
    closed: bool = False
    _pending_dropped: int = field(default=0, repr=False)
    _pending_conflated: int = field(default=0, repr=False)

    def wants(self, key: str, item: T) -> bool:
        if self.symbols is not None and key not in self.symbols:
            return False
        return self.predicate is None or self.predicate(item)

    def take(self, max_items: int) -> Delivery[T] | None:
        """Up to `max_items` items after the cursor, or None when there is nothing new."""
        return self.log._take(self, max_items)

    def close(self) -> None:
        self.log._unsubscribe(self)


class StreamLog(Generic[T]):
    """A bounded ring of published items shared by every subscriber of one stream kind."""

    def __init__(
        self,
        *,
        capacity: int,
        key: Callable[[T], str],
        conflate: bool,
        sequence: Callable[[T], int] | None = None,
        max_subscribers: int = 1000,
    ) -> None:
        if capacity < 1:
            raise InvalidArgument("A stream log needs a capacity of at least one item.")
        if max_subscribers < 1:
            raise InvalidArgument("A stream log must allow at least one subscriber.")
        self.capacity = capacity
        self.conflate = conflate
        self.max_subscribers = max_subscribers
        self._key = key
        self._sequence = sequence
        self._seqs: list[int] = [0] * capacity
        self._items: list[T | None] = [None] * capacity
        self._keys: list[str] = [""] * capacity
        self.head = 0  # sequence number of the newest item; the first item is 1
        # Latest (position, sequence, item) per key: what a conflating subscriber that
        # fell behind the ring is caught up with.
        self._latest: dict[str, tuple[int, int, T]] = {}
        self._subscribers: list[Subscription[T]] = []

    @property
    def oldest(self) -> int:
        """Sequence number of the oldest item still in the ring."""
        return max(1, self.head - self.capacity + 1)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def held(self) -> int:
        """How many items the ring holds: all published until it is full, then its capacity."""
        return min(self.head, self.capacity)

    def publish(self, items: Iterable[T]) -> int:
        """Append items; wakes every subscriber. Returns the new head sequence number."""
        cap = self.capacity
        seq = self.head
        store = self._items
        keys = self._keys
        seqs = self._seqs
        latest = self._latest if self.conflate else None
        key_of = self._key
        sequence_of = self._sequence
        for item in items:
            seq += 1
            key = key_of(item)
            slot = seq % cap
            store[slot] = item
            keys[slot] = key
            seqs[slot] = ext = seq if sequence_of is None else sequence_of(item)
            if latest is not None:
                latest[key] = (seq, ext, item)
        if seq != self.head:
            self.head = seq
            for subscriber in self._subscribers:
                if subscriber.on_ready is not None:
                    subscriber.on_ready()
        return seq

    def subscribe(
        self,
        *,
        symbols: Iterable[str] | None = None,
        predicate: Callable[[T], bool] | None = None,
        resume_after: int = 0,
        on_ready: Callable[[], None] | None = None,
    ) -> Subscription[T]:
        """A new subscriber: live from now (resume_after 0), or from after `resume_after`."""
        if len(self._subscribers) >= self.max_subscribers:
            raise ResourceExhausted(
                f"This server already serves {self.max_subscribers} streams of this kind; retry later.",
                retry_after_s=1.0,
            )
        if resume_after < 0:
            raise InvalidArgument("A resume sequence number cannot be negative.")
        wanted = frozenset(symbols) if symbols else None
        gap = False
        cursor = self.head
        if resume_after:
            if self.head == 0 or resume_after < self.sequence_at(self.oldest):
                # What came between the client's last item and the ring's oldest is gone.
                gap = True
                cursor = self.oldest - 1 if self.head else 0
            elif resume_after < self.sequence_at(self.head):
                cursor = self._position_after(resume_after)
        subscription = Subscription(self, wanted, predicate, cursor, on_ready, gap=gap)
        self._subscribers.append(subscription)
        return subscription

    def sequence_at(self, position: int) -> int:
        """The sequence of the item at ring `position` (which must still be in the ring)."""
        return self._seqs[position % self.capacity]

    def _position_after(self, sequence: int) -> int:
        """The ring position of the last item whose sequence is at most `sequence`."""
        low, high = self.oldest, self.head
        while low < high:
            middle = (low + high + 1) // 2
            if self.sequence_at(middle) <= sequence:
                low = middle
            else:
                high = middle - 1
        return low

    def _unsubscribe(self, subscription: Subscription[T]) -> None:
        if not subscription.closed:
            subscription.closed = True
            self._subscribers.remove(subscription)

    def _take(self, sub: Subscription[T], max_items: int) -> Delivery[T] | None:
        if max_items < 1:
            raise InvalidArgument("A batch must hold at least one item.")
        if sub.closed:
            return None
        if sub.cursor < self.oldest - 1:
            if self.conflate:
                return self._take_snapshot(sub, max_items)
            lost = self.oldest - 1 - sub.cursor
            sub.dropped += lost
            sub._pending_dropped += lost
            sub.cursor = self.oldest - 1
        if self.conflate:
            return self._take_conflated(sub, max_items)
        return self._take_in_order(sub, max_items)

    def _deliver(self, sub: Subscription[T], items: list[T], seqs: list[int]) -> Delivery[T] | None:
        if not items and not sub.gap and not sub._pending_dropped:
            return None
        delivery = Delivery(
            items, seqs, sub.position, sub._pending_dropped, sub._pending_conflated, sub.gap
        )
        sub._pending_dropped = 0
        sub._pending_conflated = 0
        sub.gap = False
        return delivery

    def _take_in_order(self, sub: Subscription[T], max_items: int) -> Delivery[T] | None:
        items: list[T] = []
        seqs: list[int] = []
        cap = self.capacity
        seq = sub.cursor
        head = self.head
        while seq < head and len(items) < max_items:
            seq += 1
            slot = seq % cap
            item = self._items[slot]
            assert item is not None
            if sub.wants(self._keys[slot], item):
                items.append(item)
                seqs.append(self._seqs[slot])
        if seq != sub.cursor:
            sub.position = self.sequence_at(seq)
        sub.cursor = seq
        return self._deliver(sub, items, seqs)

    def _take_conflated(self, sub: Subscription[T], max_items: int) -> Delivery[T] | None:
        wanted: list[int] = []
        newest: dict[str, int] = {}
        cap = self.capacity
        for seq in range(sub.cursor + 1, self.head + 1):
            slot = seq % cap
            item = self._items[slot]
            assert item is not None
            key = self._keys[slot]
            if sub.wants(key, item):
                wanted.append(seq)
                newest[key] = seq
        ordered = sorted(newest.values())
        if len(ordered) > max_items:
            # Stop at the last delivered item: every later item is the newest of its
            # symbol, so the next take delivers it; everything before is superseded.
            ordered = ordered[:max_items]
            sub.cursor = ordered[-1]
            considered = bisect.bisect_right(wanted, sub.cursor)
        else:
            sub.cursor = self.head
            considered = len(wanted)
        if sub.cursor >= self.oldest:
            sub.position = max(sub.position, self.sequence_at(sub.cursor))
        skipped = considered - len(ordered)
        sub.conflated += skipped
        sub._pending_conflated += skipped
        items = [self._item_at(p) for p in ordered]
        return self._deliver(sub, items, [self.sequence_at(p) for p in ordered])

    def _take_snapshot(self, sub: Subscription[T], max_items: int) -> Delivery[T] | None:
        """Catch up a subscriber that fell behind the ring from the latest-per-symbol map.

        Symbols whose latest quote is older than the ring are delivered from the
        map (all of them, however many: at most one per symbol); the others come
        through the normal conflated path from the ring on the next take.
        """
        boundary = self.oldest - 1
        old = sorted(
            (seq, key)
            for key, (seq, _, item) in self._latest.items()
            if sub.cursor < seq <= boundary and sub.wants(key, item)
        )
        skipped = max(0, boundary - sub.cursor - len(old))
        sub.conflated += skipped
        sub._pending_conflated += skipped
        sub.cursor = boundary
        if not old:
            return self._take_conflated(sub, max_items)
        items = [self._latest[key][2] for _, key in old]
        seqs = [self._latest[key][1] for _, key in old]
        sub.position = max(sub.position, seqs[-1])
        return self._deliver(sub, items, seqs)

    def _item_at(self, seq: int) -> T:
        item = self._items[seq % self.capacity]
        assert item is not None
        return item


def split_batches(items: Sequence[T], batch_size: int) -> list[Sequence[T]]:
    """Cut a delivery into stream messages of at most `batch_size` items."""
    if batch_size < 1:
        raise InvalidArgument("Batch size must be at least one.")
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
