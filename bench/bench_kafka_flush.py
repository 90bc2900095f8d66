"""How long a producer's flush takes to return once the broker has taken its records.

Run: python bench/bench_kafka_flush.py [--samples 200] [--batch 1,100] [--rounds 3]

The market data feed awaits `EventProducer.flush()` for each batch of ticks (one
batch in flight), so a flush's own delay adds to every tick's socket→Kafka latency.
Against the embedded Kafka-protocol broker, each sample sends --batch records with
`send` and then waits for them, two ways, alternating sample by sample in one run:
- ours: `EventProducer.flush()`, woken by the delivery report that brings the
  counts level (the poller thread serves the reports);
- peer: librdkafka's own `flush()` on a worker thread beside that poller, which is
  what `EventProducer.flush()` called before.
Figures: p50/p99 in ms of send + flush per batch size, and the ratio of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import record
from bench.latency import percentile
from cift.runtime.kafka import SCHEMA_HEADER, EventProducer, ensure_topics
from cift.stack.launcher import Stack, StackOptions

TOPIC = "bench.flush"


async def librdkafka_flush(producer: EventProducer) -> None:
    while await asyncio.to_thread(producer._producer.flush, 1.0):
        pass


async def timed(
    producer: EventProducer, batch: int, flush: Callable[[EventProducer], Awaitable[None]]
) -> float:
    records = [(f"k{n}", b"x" * 64, [(SCHEMA_HEADER, b"bench")]) for n in range(batch)]
    started = time.perf_counter()
    await producer.send(TOPIC, records)
    await flush(producer)
    return (time.perf_counter() - started) * 1000


async def measure(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    await ensure_topics(bootstrap, [TOPIC], partitions=3)
    producer = EventProducer(bootstrap, "bench")
    await producer.start()
    figures: dict[str, Any] = {}
    ways: dict[str, Callable[[EventProducer], Awaitable[None]]] = {
        "ours": EventProducer.flush,
        "librdkafka": librdkafka_flush,
    }
    try:
        for batch in args.batch:
            samples: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(3):  # warm the connection and the partitions' leaders
                await timed(producer, batch, EventProducer.flush)
            for _ in range(args.rounds):
                for _ in range(args.samples):
                    for name, flush in ways.items():
                        samples[name].append(await timed(producer, batch, flush))
            row: dict[str, Any] = {
                name: {
                    "p50_ms": round(statistics.median(values), 3),
                    "p99_ms": round(percentile(values, 99), 3),
                }
                for name, values in samples.items()
            }
            row["librdkafka_over_ours_p50"] = round(
                row["librdkafka"]["p50_ms"] / row["ours"]["p50_ms"], 2
            )
            figures[f"batch_{batch}"] = row
            print(f"batch {batch:>5}: {row}", flush=True)
    finally:
        await producer.stop()
    return figures


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cift-bench-flush-") as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        print("starting the embedded broker …", flush=True)
        info = await stack.start()
        try:
            figures = await measure(info.kafka_bootstrap, args)
        finally:
            await stack.stop()
    print(f"written: {record('bench_kafka_flush', figures)}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="samples per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 100],
        help="records per flush, comma-separated",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    print("python bench/bench_kafka_flush.py " + " ".join(sys.argv[1:]), flush=True)
    asyncio.run(main(parse()))
