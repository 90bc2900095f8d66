"""A consumer across a restart of the in-memory broker: it starts over, and so must its readers.

The embedded broker keeps nothing on disk, so a restarted one is a new, empty log
whose offsets begin at 0 again, while each consumer still holds its position in the
old one. Once producers (the outbox relay re-publishing what was lost, and new
events) have written past that position, a consumer that simply resumes there skips
everything before it: the events it never saw. Every event must still be read.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import confluent_kafka
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from cift.runtime.kafka import Event, EventConsumer, encode_headers
from cift.stack import kafka_broker
from cift.stack.ports import free_ports
from tests.integration.runtime.own_broker import start_broker

pytestmark = pytest.mark.integration


def publish(bootstrap: str, topic: str, values: list[str]) -> None:
    """Publish `values` in order and wait until the broker acknowledged every one."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(
            topic,
            StringValue(value=value).SerializeToString(),
            key=b"k",
            headers=list(encode_headers(StringValue(), value)),
        )
    assert producer.flush(30) == 0


class Received:
    def __init__(self) -> None:
        self.values: list[str] = []
        self.changed = asyncio.Event()

    async def handle(self, events: list[Event]) -> None:
        self.values.extend(e.message.value for e in events)  # type: ignore[attr-defined]
        self.changed.set()

    async def all_of(self, wanted: set[str], timeout_s: float = 30.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not wanted <= set(self.values):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            missing = sorted(wanted - set(self.values))
            raise AssertionError(f"{len(missing)} never read, first {missing[:3]}") from None


async def test_a_consumer_reads_all_a_restarted_broker_holds(tmp_path: Path) -> None:
    topic = f"test.restart.{uuid.uuid4().hex[:8]}"
    (port,) = free_ports(1)
    bootstrap = kafka_broker.bootstrap_address(port)
    broker = await start_broker(port, tmp_path / "broker.log", topic)
    received = Received()
    consumer = EventConsumer(
        bootstrap, "test", f"g-{uuid.uuid4().hex[:6]}", [topic], session_timeout_ms=2000
    )
    task: asyncio.Task[None] | None = None
    try:
        await consumer.start()
        task = asyncio.create_task(consumer.run(received.handle))
        before = [f"before-{i}" for i in range(200)]
        await asyncio.to_thread(publish, bootstrap, topic, before)
        await received.all_of(set(before))
        # Down long enough for the consumer's reconnect back-off to grow past the
        # moment the new broker takes its first records.
        await broker.stop()
        await asyncio.sleep(3.0)
        broker = await start_broker(port, tmp_path / "broker.log", topic)
        after = [f"after-{i}" for i in range(300)]  # more than the consumer's old position
        await asyncio.to_thread(publish, bootstrap, topic, after)
        await received.all_of(set(after))
    finally:
        await consumer.stop()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        await broker.stop()
