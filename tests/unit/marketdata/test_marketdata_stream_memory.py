"""Market data's stream logs hold at most their capacity: once full, publishing costs no memory.

The soak saw the market data process grow for half an hour at the simulator's rate.
What grew was the three rings of the stream hub (quotes, trades, bars) filling up to
`CIFT_MARKETDATA_STREAM_RING` items each, ~0.9 KiB per protobuf item: a bound, not a
leak. These tests pin the bound: after a ring is full, publishing ten times its
capacity more must not grow what Python allocates by more than a tenth of what filling
it took — a ring that kept its items (or a per-item index, or a latest-per-key map that
grew with items rather than keys) would grow by ten times as much.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

from prometheus_client import REGISTRY

from cift.marketdata.v1 import marketdata_pb2
from services.marketdata.bars import Bar
from services.marketdata.events import bar_pb
from services.marketdata.fanout import StreamLog
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from services.marketdata.streams import StreamHub
from services.marketdata.ticks import Trade

CAPACITY = 512
SYMBOLS = [f"S{n:02d}" for n in range(50)]


def growth(fill: Callable[[], None], more: Callable[[], None]) -> tuple[int, int]:
    """Bytes Python still holds after `fill` (from empty), then after `more` (from full).

    One trace over both: an item allocated while filling and freed while publishing
    more must count as freed.
    """
    gc.collect()
    tracemalloc.start()
    try:
        empty = tracemalloc.get_traced_memory()[0]
        fill()
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        more()
        gc.collect()
        return full - empty, tracemalloc.get_traced_memory()[0] - full
    finally:
        tracemalloc.stop()


def test_a_full_trade_log_does_not_grow_however_much_is_published() -> None:
    log: StreamLog[Trade] = StreamLog(capacity=CAPACITY, key=lambda t: t.symbol, conflate=False)
    live = log.subscribe()
    stalled = log.subscribe(symbols=["S01"])
    counter = iter(range(1, 1 << 62))

    def publish(count: int) -> None:
        for _ in range(count):
            n = next(counter)
            log.publish([Trade(SYMBOLS[n % len(SYMBOLS)], n, 100.0 + n, float(n))])
            live.take(1000)

    filling, more = growth(lambda: publish(2 * CAPACITY), lambda: publish(10 * CAPACITY))

    assert filling > 0
    assert more < filling / 10, (filling, more)
    assert stalled.take(10 * CAPACITY) is not None  # the stalled one still reads the ring


def test_the_hubs_three_rings_stop_growing_once_full_with_real_ticks_and_bars() -> None:
    hub = StreamHub(capacity=CAPACITY, max_subscribers=10)
    quotes = hub.quotes.subscribe()
    simulator = Simulator(default_universe(), seed=7, rate_per_symbol=2.0)
    stamper = FeedRunner(NoTicks(), None, hub.publish_ticks, interval_s=0.01, sequence_base=0)
    minute = iter(range(1, 1 << 62))
    simulator.next_events(1)  # compiled (or loaded) before the trace: not the rings' memory

    def publish(rounds: int) -> None:
        # A quarter of the ticks are trades: sixteen rounds fill the trade ring too.
        for _ in range(rounds):
            hub.publish_ticks(stamper.stamp(simulator.next_events(CAPACITY)))
            start_ns = next(minute) * 60_000_000_000
            hub.publish_bars(
                bar_pb(Bar(symbol, "1Min", start_ns, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0, 3))
                for symbol in SYMBOLS
            )
            quotes.take(CAPACITY)

    filling, more = growth(lambda: publish(16), lambda: publish(10 * 16))

    assert min(hub.quotes.head, hub.trades.head, hub.bars.head) > CAPACITY
    assert filling > 0
    assert more < filling / 10, (filling, more)
    hub.publish_ticks(stamper.stamp(simulator.next_events(8)))
    delivery = quotes.take(CAPACITY)
    assert delivery is not None
    assert all(isinstance(item, marketdata_pb2.Quote) for item in delivery.items)


def test_the_ring_gauge_counts_what_each_ring_holds_up_to_its_capacity() -> None:
    """The soak's bound for market data allows for the rings' items; it reads them here."""
    hub = StreamHub(capacity=CAPACITY, max_subscribers=10)

    def held(stream: str) -> float | None:
        return REGISTRY.get_sample_value("cift_marketdata_stream_ring_items", {"stream": stream})

    assert (held("quotes"), held("trades"), held("bars")) == (0, 0, 0)
    hub.publish_ticks(
        [marketdata_pb2.Quote(symbol="S00", sequence=n) for n in range(1, 101)]
        + [marketdata_pb2.Trade(symbol="S00", sequence=n) for n in range(1, 4)]
    )
    assert (held("quotes"), held("trades"), held("bars")) == (100, 3, 0)
    hub.publish_ticks(
        marketdata_pb2.Quote(symbol=SYMBOLS[n % 50], sequence=n) for n in range(3 * CAPACITY)
    )
    assert (held("quotes"), held("trades")) == (CAPACITY, 3)
