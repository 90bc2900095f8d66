"""A Tansu broker of a test's own, for tests that stop and restart it (the shared one must not)."""

from __future__ import annotations

from pathlib import Path

from cift.runtime.kafka import ensure_topics
from cift.stack import kafka_broker
from cift.stack.probes import probe_kafka, wait_until_answers
from cift.stack.processes import Child


async def start_broker(port: int, log: Path, topic: str, partitions: int = 1) -> Child:
    """Start it on `port`, answering, with `topic` created (a restart starts empty)."""
    broker = kafka_broker.spawn_broker(port, log)
    bootstrap = kafka_broker.bootstrap_address(port)
    await wait_until_answers("test broker", lambda: probe_kafka(bootstrap), 30.0)
    await ensure_topics(bootstrap, [topic], partitions=partitions)
    return broker
