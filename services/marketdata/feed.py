"""The feed task: turns a tick source (simulator, file replay, a provider) into published ticks.

Every interval (or as soon as a provider's ticks arrive) it takes the ticks that
became due, stamps each with the next tick sequence, hands them to the local stream
hub (lowest latency for subscribers) and sends them to `marketdata.ticks.v1`. The
broker's acknowledgement is awaited on a task of its own while the next batch is
taken and stamped, and that batch is sent only once the previous one was
acknowledged: one batch in flight at most, so a slow broker slows the feed, never
the other way round (a provider's socket is read on its own task into a bounded
buffer meanwhile), yet stamping no longer waits out each round trip.

Sequences: `base + n`, where `base` is the wall clock in nanoseconds when the feed
started. A feed cannot publish more than one tick per nanosecond, so a restarted
feed's sequences are always above the previous run's: sequences only grow, across
restarts too, without any shared counter.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from prometheus_client import Counter

from cift.marketdata.v1 import marketdata_pb2
from cift.runtime.kafka import TOPIC_TICKS, EventProducer
from services.marketdata.events import TickMessage, publish_ticks, quote_pb, trade_pb
from services.marketdata.replay import Paced, pace
from services.marketdata.simulator import Simulator
from services.marketdata.ticks import Quote, Tick, Trade

log = logging.getLogger(__name__)

TICKS_PUBLISHED = Counter("cift_marketdata_feed_ticks_total", "Ticks the feed published.", ["kind"])
# Bound on one interval's work, so a fast rate cannot starve the event loop.
MAX_TICKS_PER_INTERVAL = 20_000


class TickSource(Protocol):
    def due(self, now_ns: int) -> list[Tick]:
        """Ticks whose time has come by `now_ns`, oldest first (at most MAX_TICKS_PER_INTERVAL)."""
        ...

    @property
    def finished(self) -> bool: ...

    async def ready(self, timeout_s: float) -> None:
        """Wait until ticks may be due: `timeout_s` for a paced source, less for a live one."""
        ...


class PacedSource:
    """Sources whose ticks fall due with the clock: the feed simply waits out its interval."""

    async def ready(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)


class NoTicks(PacedSource):
    """A finished source, for callers that stamp and publish ticks themselves (tests, benches)."""

    finished = True

    def due(self, now_ns: int) -> list[Tick]:
        return []


# A simulator behind the clock (after the seconds its stored past took, or a stall of the
# event loop) catches up at most this fast, or at twice its own pace if that is faster:
# all at once, a long gap came in batches that held market data's event loop (its health
# checks included) for over a second each; at this pace it comes in small ones.
CATCH_UP_TICKS_PER_S = 10_000
# What the first call may release: an interval's worth at that pace.
_FIRST_CALL_S = 0.01


class SimulatorSource(PacedSource):
    """Simulated ticks on the wall clock, each due when its time has come (a simulator
    started in the past has the ticks up to now due as fast as it may catch up)."""

    def __init__(self, simulator: Simulator, pending: Sequence[Tick] = ()) -> None:
        """`pending`: events the simulator already made, due before its next ones."""
        self._simulator = simulator
        self._pending: list[Tick] = list(pending)
        self._pending_ts: list[int] = [t.ts_ns for t in self._pending]
        live_rate = simulator.rate_per_symbol * len(simulator.symbols)
        self._chunk = max(64, int(live_rate * 0.05))
        self._catch_up_per_s = max(CATCH_UP_TICKS_PER_S, 2 * live_rate)
        self._last_due_ns: int | None = None

    @property
    def finished(self) -> bool:
        return False

    def _limit(self, now_ns: int) -> int:
        """How many ticks this call may release: the catch-up pace since the last call."""
        elapsed_s = (
            _FIRST_CALL_S if self._last_due_ns is None else (now_ns - self._last_due_ns) / 1e9
        )
        self._last_due_ns = now_ns
        return max(1, min(MAX_TICKS_PER_INTERVAL, int(self._catch_up_per_s * elapsed_s)))

    def due(self, now_ns: int) -> list[Tick]:
        out: list[Tick] = []
        limit = self._limit(now_ns)
        while len(out) < limit:
            if not self._pending:
                self._pending = self._simulator.next_events(self._chunk)
                self._pending_ts = [t.ts_ns for t in self._pending]
            cut = bisect.bisect_right(self._pending_ts, now_ns)
            cut = min(cut, limit - len(out))
            out.extend(self._pending[:cut])
            if cut < len(self._pending):
                del self._pending[:cut]
                del self._pending_ts[:cut]
                break
            self._pending = []
        return out


class ReplaySource(PacedSource):
    """A replay file's ticks, paced at `speed` from the moment the feed starts.

    With speed > 0 the ticks are re-timestamped to when they are published (history
    compressed by the speed, so a 60x replay turns an hour into a minute of bars);
    with speed 0 everything is published at once with its original timestamps.
    """

    def __init__(self, ticks: Sequence[Tick], *, speed: float, start_ns: int, loop: bool) -> None:
        self._ticks = ticks
        self._speed = speed
        self._loop = loop
        self._start_ns = start_ns
        self._schedule: Iterator[Paced] = pace(ticks, speed=speed)
        self._next: Paced | None = next(self._schedule, None)
        self._last_due_ns = start_ns - 1
        self._finished = self._next is None

    @property
    def finished(self) -> bool:
        return self._finished

    def _due_ns(self, paced: Paced) -> int:
        return self._start_ns + int(paced.due_s * 1_000_000_000)

    def due(self, now_ns: int) -> list[Tick]:
        out: list[Tick] = []
        while self._next is not None and len(out) < MAX_TICKS_PER_INTERVAL:
            due_ns = self._due_ns(self._next)
            if self._speed > 0 and due_ns > now_ns:
                break
            tick = self._next.event
            # Distinct, increasing times even when several ticks share a due time.
            ts_ns = max(due_ns, self._last_due_ns + 1) if self._speed > 0 else tick.ts_ns
            self._last_due_ns = ts_ns
            out.append(tick._replace(ts_ns=ts_ns) if self._speed > 0 else tick)
            self._next = next(self._schedule, None)
            if self._next is None and self._loop and self._speed > 0:
                self._start_ns = self._last_due_ns + 1
                self._schedule = pace(self._ticks, speed=self._speed)
                self._next = next(self._schedule, None)
        self._finished = self._next is None
        return out


class FeedRunner:
    """Publishes a tick source's ticks with sequence numbers, to the hub and to Kafka."""

    def __init__(
        self,
        source: TickSource,
        producer: EventProducer | None,
        on_ticks: Callable[[list[TickMessage]], None],
        *,
        interval_s: float,
        topic: str = TOPIC_TICKS,
        sequence_base: int | None = None,
        after_publish: Callable[[Sequence[TickMessage]], None] | None = None,
    ) -> None:
        self.source = source
        self.producer = producer
        self.on_ticks = on_ticks
        self.interval_s = interval_s
        self.topic = topic
        self.next_sequence = (sequence_base if sequence_base is not None else time.time_ns()) + 1
        self._last_trade: dict[str, float] = {}
        # Called once the broker acknowledged a batch (latency measurements).
        self.after_publish = after_publish
        self._in_flight: asyncio.Task[None] | None = None

    def stamp(self, ticks: Sequence[Tick]) -> list[TickMessage]:
        """Protobuf ticks with sequences; quotes carry the symbol's last trade price."""
        messages: list[TickMessage] = []
        sequence = self.next_sequence
        last_trade = self._last_trade
        for tick in ticks:
            if isinstance(tick, Quote):
                messages.append(quote_pb(tick, sequence, last_trade.get(tick.symbol, 0.0)))
            else:
                assert isinstance(tick, Trade)
                last_trade[tick.symbol] = tick.price
                messages.append(trade_pb(tick, sequence))
            sequence += 1
        self.next_sequence = sequence
        return messages

    async def publish_once(self, now_ns: int) -> int:
        """Stamp and send the due ticks; their acknowledgement is awaited in the background."""
        messages = self.stamp(self.source.due(now_ns))
        if not messages:
            return 0
        self.on_ticks(messages)
        if self.producer is not None:
            await self.settle()
            await publish_ticks(self.producer, messages, self.topic)
            self._in_flight = asyncio.create_task(self._acknowledged(self.producer, messages))
        elif self.after_publish is not None:
            self.after_publish(messages)
        quotes = sum(1 for m in messages if isinstance(m, marketdata_pb2.Quote))
        TICKS_PUBLISHED.labels("quote").inc(quotes)
        TICKS_PUBLISHED.labels("trade").inc(len(messages) - quotes)
        return len(messages)

    async def _acknowledged(self, producer: EventProducer, messages: list[TickMessage]) -> None:
        await producer.flush()
        if self.after_publish is not None:
            self.after_publish(messages)

    async def settle(self) -> None:
        """Wait until the batch in flight (if any) was acknowledged by the broker."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    async def run(self) -> None:
        """Publish until the source is finished (never, for the simulator) or cancelled."""
        log.info("feed started", extra={"first_sequence": self.next_sequence})
        try:
            while not self.source.finished:
                started = time.monotonic()
                await self.publish_once(time.time_ns())
                await self.source.ready(max(0.0, self.interval_s - (time.monotonic() - started)))
            await self.settle()
        finally:
            if self._in_flight is not None:
                self._in_flight.cancel()
        log.info("feed finished: the replay file has been published")
