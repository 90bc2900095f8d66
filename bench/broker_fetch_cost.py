"""What makes the embedded broker's CPU grow: producing, fetching, or committing.

Run: python bench/broker_fetch_cost.py [--seconds 90] [--rate 100] [--consumers 4]
    [--modes produce,commit,read,gather]

Each mode gets a Tansu broker of its own (in memory, as `cift up` runs it) with one
4-partition topic, and records of 150 bytes arrive at `--rate` a second for
`--seconds`. The broker's CPU (% of one core) is printed every 15 s beside how many
records it holds:
- produce: no consumer;
- commit: `--consumers` groups read each record as it arrives and commit each batch;
- read: the same, never committing;
- gather: as commit, but each fetch asks the broker to wait for 1 MB or 100 ms.
Not part of `make bench`: it explains a cost (docs/RELIABILITY.md) rather than
tracking one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import confluent_kafka

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import cpu_seconds
from cift.runtime.kafka import ensure_topics
from cift.stack import kafka_broker
from cift.stack.ports import free_ports
from cift.stack.probes import probe_kafka, wait_until_answers

TOPIC = "fetch.cost"
SAMPLE_S = 15.0
MODES = ("produce", "commit", "read", "gather")


def read_until(stop: threading.Event, bootstrap: str, group: str, mode: str) -> None:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
    }
    if mode == "gather":
        config.update({"fetch.min.bytes": 1_000_000, "fetch.wait.max.ms": 100})
    consumer = confluent_kafka.Consumer(config)
    consumer.subscribe([TOPIC])
    while not stop.is_set():
        if consumer.consume(500, 0.1) and mode != "read":
            consumer.commit(asynchronous=True)
    consumer.close()


async def run_mode(mode: str, args: argparse.Namespace) -> None:
    (port,) = free_ports(1)
    bootstrap = kafka_broker.bootstrap_address(port)
    with tempfile.TemporaryDirectory() as home:
        broker = kafka_broker.spawn_broker(port, Path(home) / "broker.log")
        try:
            await wait_until_answers("broker", lambda: probe_kafka(bootstrap), 30.0)
            await ensure_topics(bootstrap, [TOPIC], partitions=4)
            await asyncio.to_thread(measure, mode, args, bootstrap, broker.pid)
        finally:
            await broker.stop()


def measure(mode: str, args: argparse.Namespace, bootstrap: str, pid: int) -> None:
    stop = threading.Event()
    readers = [
        threading.Thread(target=read_until, args=(stop, bootstrap, f"g{i}", mode), daemon=True)
        for i in range(0 if mode == "produce" else args.consumers)
    ]
    for reader in readers:
        reader.start()
    time.sleep(5.0)  # the groups join before records arrive
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    value = b"x" * 150
    sent = 0
    started = sampled_at = time.monotonic()
    cpu_before = cpu_seconds(pid)
    while sent < args.rate * args.seconds:
        now = time.monotonic()
        while sent < int((now - started) * args.rate):
            producer.produce(TOPIC, value, key=str(sent % 16))
            sent += 1
        producer.poll(0)
        if now - sampled_at >= SAMPLE_S:
            cpu = cpu_seconds(pid)
            share = (cpu - cpu_before) / (now - sampled_at) * 100
            print(f"| {mode} | {sent:,} | {share:.1f} |", flush=True)
            cpu_before, sampled_at = cpu, now
        time.sleep(0.01)
    producer.flush(10)
    stop.set()
    for reader in readers:
        reader.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--rate", type=int, default=100, help="records per second")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    print(f"# python bench/broker_fetch_cost.py {' '.join(sys.argv[1:])}".rstrip())
    print("| mode | records held | broker CPU, % of a core |\n|---|---:|---:|")
    for mode in args.modes.split(","):
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
        asyncio.run(run_mode(mode, args))


if __name__ == "__main__":
    main()
