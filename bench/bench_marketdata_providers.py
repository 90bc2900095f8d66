"""Provider feeds (Alpaca, Massive): decode rate, socket→Kafka throughput, added latency.

Run: python bench/bench_marketdata_providers.py [--quotes 200000] [--rate 5000] [--seconds 8]

Per provider, against the local server that speaks its documented protocol
(tests/fakes) and the embedded Kafka-protocol broker started by the project's
launcher:
1. decode: frames of 1,000 documented quotes turned into ticks (`decode`), then
   also stamped with sequences and serialized to the Kafka value (what the feed
   does per tick); quotes/s on one core. Goal: >= 100,000/s from one socket.
2. socket→Kafka: the server sends --quotes quotes as fast as it can (frames of
   1,000); the feed (ProviderFeed + FeedRunner, as the service wires them) reads,
   stamps and publishes them; quotes/s from the first frame to the last broker ack.
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
from services.marketdata.providers.protocol import StreamProtocol
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


def bench_decode(name: str, seconds: float = 2.0) -> tuple[float, float]:
    quotes, protocol_of, _ = PROVIDERS[name]
    protocol = protocol_of("ws://unused")
    frame = json.dumps(quotes(FRAME, time.time_ns()))
    runner = FeedRunner(LiveSource(1, name), None, lambda _m: None, interval_s=0.0)
    rates = []
    for full in (False, True):
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            ticks = protocol.decode(frame).ticks
            if full:
                for message in runner.stamp(ticks):
                    tick_event_bytes(message)
            done += len(ticks)
        rates.append(done / (time.perf_counter() - started))
    return rates[0], rates[1]


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
    name: str, bootstrap: str, quotes_total: int, rate: int, seconds: float
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
    feed = ProviderFeed(protocol_of(url), SYMBOLS, source, Backoff(0.1, 1.0))
    runner = FeedRunner(
        source, producer, lambda _m: None, interval_s=0.01, topic=topic, after_publish=probe
    )
    tasks = [asyncio.create_task(feed.run()), asyncio.create_task(runner.run())]
    try:
        await server.wait_subscribed()
        # Throughput: prebuilt frames as fast as the socket takes them.
        frames = [json.dumps(quotes(FRAME, time.time_ns())) for _ in range(quotes_total // FRAME)]
        started = time.perf_counter()
        for frame in frames:
            await server.send_raw(frame)
        await probe.all_acked.wait()
        throughput = probe.expected / (probe.last_ack_s - started)
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
        "p50_ms": percentile(lat, 0.5),
        "p99_ms": percentile(lat, 0.99),
        "latency_samples": float(len(lat)),
        "dropped": float(source.dropped),
    }


async def main(args: argparse.Namespace) -> None:
    tune_gc()
    figures: dict[str, Any] = {}
    rows = []
    for name in PROVIDERS:
        decode, full = bench_decode(name)
        figures[f"{name}_decode_per_s"] = decode
        figures[f"{name}_decode_stamp_serialize_per_s"] = full
    with tempfile.TemporaryDirectory(prefix="cift-providers-bench-") as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        info = await stack.start()
        try:
            for name in PROVIDERS:
                live = await bench_live(
                    name, info.kafka_bootstrap, args.quotes, args.rate, args.seconds
                )
                figures.update({f"{name}_{k}": v for k, v in live.items()})
                figures[f"{name}_produce_floor_per_s"] = await bench_produce_floor(
                    info.kafka_bootstrap, name, args.quotes
                )
        finally:
            await stack.stop()
    for name in PROVIDERS:
        rows.append(
            f"| {name} | {figures[f'{name}_decode_per_s']:,.0f} | "
            f"{figures[f'{name}_decode_stamp_serialize_per_s']:,.0f} | "
            f"{figures[f'{name}_socket_to_kafka_per_s']:,.0f} | "
            f"{figures[f'{name}_produce_floor_per_s']:,.0f} | "
            f"{figures[f'{name}_socket_to_kafka_per_s'] / figures[f'{name}_produce_floor_per_s']:.2f} | "
            f"{figures[f'{name}_p50_ms']:.2f} / {figures[f'{name}_p99_ms']:.2f} |"
        )
    goal = 100_000
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 shared cores)")
    print(
        f"command: python bench/bench_marketdata_providers.py --quotes {args.quotes} --rate {args.rate} --seconds {args.seconds}"
    )
    print(
        "| provider | decode quotes/s | + stamp + serialize /s | socket→Kafka quotes/s "
        f"| produce floor /s | x floor | p50 / p99 ms at {args.rate}/s |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for name in PROVIDERS:
        print(
            f"{name}: decode {figures[f'{name}_decode_per_s'] / goal:.2f}x and socket→Kafka "
            f"{figures[f'{name}_socket_to_kafka_per_s'] / goal:.2f}x the 100k/s goal"
        )
    record("bench_marketdata_providers", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5000, help="quotes/s for the latency run")
    parser.add_argument("--seconds", type=float, default=8.0)
    asyncio.run(main(parser.parse_args()))
