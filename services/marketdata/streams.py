"""The stream hub: one fan-out log per stream kind, and the loop that serves a subscriber.

Quotes conflate (a slow client gets the latest quote per symbol), trades and bars
drop the oldest with a counter (see fanout.py for the policy). The loop sends
batches of up to `batch` items per message and a heartbeat after `heartbeat_s` of
silence; a client that stops reading blocks only its own loop, whose cursor then
falls behind in the shared ring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from functools import partial
from operator import attrgetter
from typing import TypeVar

from prometheus_client import Counter, Gauge

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from cift.runtime.kafka import Event
from services.marketdata.fanout import Delivery, StreamLog, Subscription

log = logging.getLogger(__name__)

T = TypeVar("T")

STREAM_SKIPPED = Counter(
    "cift_marketdata_stream_skipped_total",
    "Items a slow stream subscriber did not receive: dropped (trades, bars) or conflated (quotes).",
    ["stream", "reason"],
)
STREAM_SUBSCRIBERS = Gauge(
    "cift_marketdata_stream_subscribers", "Open stream subscriptions.", ["stream"]
)
# Read when scraped, so publishing pays nothing for it. The rings are market data's
# largest memory by design: a memory bound (bench/soak.py) allows for what they hold.
STREAM_RING_ITEMS = Gauge(
    "cift_marketdata_stream_ring_items",
    "Items a stream ring holds for slow subscribers and resumes (up to CIFT_MARKETDATA_STREAM_RING).",
    ["stream"],
)


class StreamHub:
    """The live logs every stream RPC subscribes to."""

    def __init__(self, *, capacity: int, max_subscribers: int) -> None:
        # Every stream is filtered by symbol; quotes and trades resume by sequence.
        stream_log = partial(
            StreamLog, capacity=capacity, key=attrgetter("symbol"), max_subscribers=max_subscribers
        )
        sequence = attrgetter("sequence")
        self.quotes: StreamLog[marketdata_pb2.Quote] = stream_log(conflate=True, sequence=sequence)
        self.trades: StreamLog[marketdata_pb2.Trade] = stream_log(conflate=False, sequence=sequence)
        self.bars: StreamLog[marketdata_pb2.Bar] = stream_log(conflate=False)
        for stream, ring in (("quotes", self.quotes), ("trades", self.trades), ("bars", self.bars)):
            STREAM_RING_ITEMS.labels(stream=stream).set_function(ring.held)

    def publish_ticks(self, ticks: Iterable[marketdata_pb2.Quote | marketdata_pb2.Trade]) -> None:
        quotes = []
        trades = []
        for tick in ticks:
            if isinstance(tick, marketdata_pb2.Quote):
                quotes.append(tick)
            else:
                trades.append(tick)
        if quotes:
            self.quotes.publish(quotes)
        if trades:
            self.trades.publish(trades)

    def publish_bars(self, bars: Iterable[marketdata_pb2.Bar]) -> None:
        self.bars.publish(bars)

    async def relay_ticks(self, events: list[Event]) -> None:
        """Feed the hub from `marketdata.ticks.v1` (processes that run no feed themselves).

        A batch holds ticks of several partitions; sorting it by sequence keeps the
        stream in sequence order as far as the partitions arrive together.
        """
        ticks: list[marketdata_pb2.Quote | marketdata_pb2.Trade] = []
        for event in events:
            message = event.message
            if isinstance(message, events_pb2.TickEvent):
                ticks.append(message.quote if message.HasField("quote") else message.trade)
        ticks.sort(key=lambda tick: tick.sequence)
        self.publish_ticks(ticks)

    async def relay_bars(self, events: list[Event]) -> None:
        """Feed the hub from `marketdata.bars.v1`: bars close in whichever process ingests them."""
        bars = [e.message.bar for e in events if isinstance(e.message, events_pb2.BarEvent)]
        bars.sort(key=lambda bar: (bar.start_time.seconds, bar.start_time.nanos, bar.symbol))
        self.publish_bars(bars)


async def serve(
    name: str,
    subscription: Subscription[T],
    wake: asyncio.Event,
    *,
    batch: int,
    heartbeat_s: float,
) -> AsyncGenerator[Delivery[T] | None, None]:
    """Yield deliveries for one subscriber as items arrive; None means send a heartbeat.

    `wake` must be the event the subscription's on_ready sets.
    """
    STREAM_SUBSCRIBERS.labels(name).inc()
    try:
        while True:
            delivery = subscription.take(batch)
            if delivery is None:
                wake.clear()
                # Items published between take() and clear() must not be missed.
                delivery = subscription.take(batch)
            if delivery is None:
                try:
                    async with asyncio.timeout(heartbeat_s):
                        await wake.wait()
                except TimeoutError:
                    yield None
                continue
            if delivery.dropped:
                STREAM_SKIPPED.labels(name, "dropped").inc(delivery.dropped)
            if delivery.conflated:
                STREAM_SKIPPED.labels(name, "conflated").inc(delivery.conflated)
            yield delivery
    finally:
        subscription.close()
        STREAM_SUBSCRIBERS.labels(name).dec()


def waker() -> tuple[asyncio.Event, Callable[[], None]]:
    event = asyncio.Event()
    return event, event.set
