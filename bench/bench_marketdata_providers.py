"""Provider feeds (Alpaca, Massive): decode rate, socket→Kafka throughput, added latency.

Run: python bench/bench_marketdata_providers.py [--quotes 200000] [--rate 5000] [--seconds 5] [--rounds 2]

Per provider, against the local server that speaks its documented protocol
(tests/fakes) and the embedded Kafka-protocol broker started by the project's
launcher:
1. decode: frames of 1,000 documented quotes turned into ticks, by the compiled
   path (`decode`, msgspec) and by the item-by-item path it falls back to
   (`decode_items`, orjson dicts: the previous hot path); then also stamped with
   sequences and serialized to the Kafka value (what the feed does per tick).
   Quotes per CPU-second of this thread, so the machine's load weighs less.
2. socket→Kafka: the server sends --quotes quotes as fast as it can (frames of
   1,000); the feed (ProviderFeed + FeedRunner, as the service wires them) reads,
   stamps and publishes them; quotes/s from the first frame to the last broker ack,
   and the process's CPU time per quote over the same window (every thread: the
   feed, the Kafka client's, and the local server's sending). Peer in the same run,
   rounds interleaved: the previous path, item-by-item decode and each batch
   acknowledged before the next is stamped.
3. latency at a fixed rate: --rate quotes/s in frames every 10 ms, each quote
   stamped with its send time in the provider's format; added latency = broker ack
   time minus that timestamp (p50/p99). Massive's times are milliseconds, so its
   figures include up to 1 ms of truncation.
4. produce floor: the same number of already-framed tick records, with the feed's
   headers, enqueued and flushed by the same producer: what the Kafka client and
   broker alone take, so socket→Kafka ÷ floor is the share of it the feed keeps.
The server and the feed share this process and its event loop (a real provider is
another machine), so socket→Kafka figures are a floor for one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import record
from bench.latency import percentile
from cift.runtime.kafka import EVENT_ID_HEADER, SCHEMA_HEADER, EventProducer, ensure_topics
from cift.runtime.server import tune_gc
from cift.stack.launcher import Stack, StackOptions
from services.marketdata.events import TICK_SCHEMA, TickMessage, tick_event_bytes
from services.marketdata.feed import FeedRunner
from services.marketdata.providers.alpaca import AlpacaStream
from services.marketdata.providers.backoff import Backoff
from services.marketdata.providers.massive import MassiveStream
from services.marketdata.providers.protocol import Decoded, StreamProtocol
from services.marketdata.providers.session import LiveSource, ProviderFeed
from tests.fakes import alpaca, massive
from tests.fakes.provider_server import FakeStream

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "SPY"]
FRAME = 1000


def alpaca_quotes(n: int, ts_ns: int) -> list[dict[str, Any]]:
    return [
        alpaca.quote(
            SYMBOLS[k % 5], ts_ns + k, f"{180 + k % 100 / 100:.2f}", f"{180.05 + k % 100 / 100:.2f}"
        )
        for k in range(n)
    ]


def massive_quotes(n: int, ts_ns: int) -> list[dict[str, Any]]:
    return [
        massive.quote(
            SYMBOLS[k % 5],
            ts_ns // 1_000_000,
            f"{180 + k % 100 / 100:.2f}",
            f"{180.05 + k % 100 / 100:.2f}",
        )
        for k in range(n)
    ]


PROVIDERS: dict[
    str,
    tuple[
        Callable[[int, int], list[dict[str, Any]]],
        Callable[[str], StreamProtocol],
        Callable[[], FakeStream],
    ],
] = {
    "alpaca": (
        alpaca_quotes,
        lambda url: AlpacaStream(alpaca.KEY_ID, alpaca.SECRET, url + "/v2/{feed}", "iex"),
        alpaca.AlpacaStreamServer,
    ),
    "massive": (
        massive_quotes,
        lambda url: MassiveStream(massive.API_KEY, url + "/stocks"),
        massive.MassiveStreamServer,
    ),
}


class ItemByItem:
    """A provider's protocol decoding item by item (the previous hot path), as a peer."""

    def __init__(self, protocol: AlpacaStream | MassiveStream) -> None:
        self._protocol = protocol
        self.name = protocol.name

    @property
    def url(self) -> str:
        return self._protocol.url

    def auth_message(self) -> str:
        return self._protocol.auth_message()

    def subscribe_message(self, symbols: Sequence[str]) -> str:
        return self._protocol.subscribe_message(symbols)

    def decode(self, frame: str | bytes) -> Decoded:
        return self._protocol.decode_items(frame)


class AckEachBatch(FeedRunner):
    """The previous feed loop, as a peer: each batch acknowledged before the next is stamped."""

    async def publish_once(self, now_ns: int) -> int:
        published = await super().publish_once(now_ns)
        await self.settle()
        return published


def bench_decode(name: str, seconds: float = 1.5) -> dict[str, float]:
    """Quotes per CPU-second of this thread: decode, then decode + stamp + serialize."""
    quotes, protocol_of, _ = PROVIDERS[name]
    protocol = protocol_of("ws://unused")
    assert isinstance(protocol, AlpacaStream | MassiveStream)
    frame = json.dumps(quotes(FRAME, time.time_ns()))
    runner = FeedRunner(LiveSource(1, name), None, lambda _m: None, interval_s=0.0)
    rates: dict[str, float] = {}
    for path, decode in (("compiled", protocol.decode), ("items", protocol.decode_items)):
        for full in (False, True):
            done = 0
            started = time.thread_time()
            while time.thread_time() - started < seconds:
                ticks = decode(frame).ticks
                if full:
                    for message in runner.stamp(ticks):
                        tick_event_bytes(message)
                done += len(ticks)
            key = f"{path}_decode" + ("_stamp_serialize" if full else "")
            rates[key] = done / (time.thread_time() - started)
    return rates


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Probe:
    """Counts acknowledged ticks and their latency (ack time minus provider timestamp)."""

    def __init__(self) -> None:
        self.acked = 0
        self.last_ack_s = 0.0
        self.latencies_ms: list[float] = []
        self.measure = False
        self.expected = 0
        self.all_acked = asyncio.Event()

    def __call__(self, messages: Sequence[TickMessage]) -> None:
        now_ns = time.time_ns()
        self.acked += len(messages)
        self.last_ack_s = time.perf_counter()
        if self.acked >= self.expected:
            self.all_acked.set()
        if self.measure:
            for m in messages:
                self.latencies_ms.append((now_ns - m.timestamp.ToNanoseconds()) / 1e6)


async def bench_produce_floor(bootstrap: str, name: str, total: int) -> float:
    """Records/s of pre-framed tick records through the producer alone (send + flush)."""
    quotes, protocol_of, _ = PROVIDERS[name]
    protocol = protocol_of("ws://unused")
    runner = FeedRunner(LiveSource(1, name), None, lambda _m: None, interval_s=0.0)
    frame = json.dumps(quotes(FRAME, time.time_ns()))
    records: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
    while len(records) < total:
        for message in runner.stamp(protocol.decode(frame).ticks):
            headers = [
                (SCHEMA_HEADER, TICK_SCHEMA),
                (EVENT_ID_HEADER, b"tick-%d" % message.sequence),
            ]
            records.append((message.symbol, tick_event_bytes(message), headers))
    topic = f"bench.providers.floor.{name}.{time.time_ns()}"
    await ensure_topics(bootstrap, [topic], partitions=4)
    producer = EventProducer(bootstrap, "bench-providers-floor")
    await producer.start()
    try:
        started = time.perf_counter()
        for at in range(0, len(records), FRAME):
            await producer.send(topic, records[at : at + FRAME])
        await producer.flush()
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def bench_live(
    name: str, bootstrap: str, quotes_total: int, rate: int, seconds: float, *, previous: bool
) -> dict[str, float]:
    quotes, protocol_of, server_of = PROVIDERS[name]
    server = server_of()
    url = await server.start()
    topic = f"bench.providers.{name}.{time.time_ns()}"
    await ensure_topics(bootstrap, [topic], partitions=4)
    producer = EventProducer(bootstrap, "bench-providers")
    await producer.start()
    probe = Probe()
    probe.expected = quotes_total // FRAME * FRAME
    source = LiveSource(2_000_000, name)
    protocol = protocol_of(url)
    if previous:
        assert isinstance(protocol, AlpacaStream | MassiveStream)
        protocol = ItemByItem(protocol)
    feed = ProviderFeed(protocol, SYMBOLS, source, Backoff(0.1, 1.0))
    runner = (AckEachBatch if previous else FeedRunner)(
        source, producer, lambda _m: None, interval_s=0.01, topic=topic, after_publish=probe
    )
    tasks = [asyncio.create_task(feed.run()), asyncio.create_task(runner.run())]
    try:
        await server.wait_subscribed()
        # Throughput: prebuilt frames as fast as the socket takes them.
        frames = [json.dumps(quotes(FRAME, time.time_ns())) for _ in range(quotes_total // FRAME)]
        started = time.perf_counter()
        cpu_started = process_cpu_s()
        main_started = time.thread_time()
        for frame in frames:
            await server.send_raw(frame)
        await probe.all_acked.wait()
        throughput = probe.expected / (probe.last_ack_s - started)
        cpu_us_per_quote = (process_cpu_s() - cpu_started) / probe.expected * 1e6
        main_us_per_quote = (time.thread_time() - main_started) / probe.expected * 1e6
        # Latency at a fixed rate: a frame every 10 ms stamped with its send time.
        per_frame = max(1, rate // 100)
        probe.measure = True
        next_at = time.perf_counter()
        end = next_at + seconds
        while next_at < end:
            await server.send_raw(json.dumps(quotes(per_frame, time.time_ns())))
            next_at += 0.01
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.sleep(0.5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await server.stop()
    lat = probe.latencies_ms
    return {
        "socket_to_kafka_per_s": throughput,
        "cpu_us_per_quote": cpu_us_per_quote,
        "main_us_per_quote": main_us_per_quote,
        "p50_ms": percentile(lat, 0.5),
        "p99_ms": percentile(lat, 0.99),
        "latency_samples": float(len(lat)),
        "dropped": float(source.dropped),
    }


async def main(args: argparse.Namespace) -> None:
    tune_gc()
    load_start = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for name in PROVIDERS:
        for key, rate in bench_decode(name).items():
            figures[f"{name}_{key}_per_cpu_s"] = rate
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cift-providers-bench-") as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        info = await stack.start()
        try:
            for name in PROVIDERS:
                for round_ in range(args.rounds):
                    # Interleaved, the order alternating, so load drifts weigh on both.
                    order = ("previous", "now") if round_ % 2 == 0 else ("now", "previous")
                    for path in order:
                        live = await bench_live(
                            name,
                            info.kafka_bootstrap,
                            args.quotes,
                            args.rate,
                            args.seconds,
                            previous=path == "previous",
                        )
                        runs.setdefault((name, path), []).append(live)
                figures[f"{name}_produce_floor_per_s"] = await bench_produce_floor(
                    info.kafka_bootstrap, name, args.quotes
                )
        finally:
            await stack.stop()
    for (name, path), lives in runs.items():
        for key in lives[0]:
            figures[f"{name}_{path}_{key}"] = statistics.median([live[key] for live in lives])
        figures[f"{name}_{path}_socket_to_kafka_runs"] = [
            round(live["socket_to_kafka_per_s"]) for live in lives
        ]
    load_end = os.getloadavg()[0]
    figures["load_start"], figures["load_end"] = load_start, load_end
    goal = 100_000
    print(
        f"command: python bench/bench_marketdata_providers.py --quotes {args.quotes} "
        f"--rate {args.rate} --seconds {args.seconds} --rounds {args.rounds}"
    )
    print(f"load average {load_start:.1f} at the start, {load_end:.1f} at the end (2 shared cores)")
    print()
    print("| provider | path | decode /CPU-s | + stamp + serialize /CPU-s |")
    print("|---|---|---|---|")
    for name in PROVIDERS:
        for path, label in (("compiled", "compiled (msgspec)"), ("items", "item by item")):
            print(
                f"| {name} | {label} | {figures[f'{name}_{path}_decode_per_cpu_s']:,.0f} | "
                f"{figures[f'{name}_{path}_decode_stamp_serialize_per_cpu_s']:,.0f} |"
            )
    print()
    print(
        f"| provider | path | socket→Kafka quotes/s (median of {args.rounds}) | runs "
        "| CPU µs/quote: process (event loop) | x produce floor "
        f"| p50 / p99 ms at {args.rate}/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in PROVIDERS:
        floor = figures[f"{name}_produce_floor_per_s"]
        for path, label in (("now", "now"), ("previous", "previous (peer)")):
            rate = figures[f"{name}_{path}_socket_to_kafka_per_s"]
            print(
                f"| {name} | {label} | {rate:,.0f} | "
                f"{', '.join(f'{r:,}' for r in figures[f'{name}_{path}_socket_to_kafka_runs'])} | "
                f"{figures[f'{name}_{path}_cpu_us_per_quote']:.2f} "
                f"({figures[f'{name}_{path}_main_us_per_quote']:.2f}) | {rate / floor:.2f} | "
                f"{figures[f'{name}_{path}_p50_ms']:.2f} / {figures[f'{name}_{path}_p99_ms']:.2f} |"
            )
        print(f"| {name} | produce floor | {floor:,.0f} | | | 1.00 | |")
    print()
    for name in PROVIDERS:
        now = figures[f"{name}_now_socket_to_kafka_per_s"]
        before = figures[f"{name}_previous_socket_to_kafka_per_s"]
        cpu_now = figures[f"{name}_now_cpu_us_per_quote"]
        cpu_before = figures[f"{name}_previous_cpu_us_per_quote"]
        print(
            f"{name}: socket→Kafka {now / before:.2f}x the previous path, "
            f"{now / goal:.2f}x the 100k/s goal; CPU per quote {cpu_before / cpu_now:.2f}x less "
            f"({1e6 / cpu_now:,.0f} quotes per process CPU-second)"
        )
    record("bench_marketdata_providers", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5000, help="quotes/s for the latency run")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the latency run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per path")
    asyncio.run(main(parser.parse_args()))
