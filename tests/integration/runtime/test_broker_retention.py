"""The embedded broker's memory stays bounded: restarted empty once its consumers read it."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import confluent_kafka
import pytest
from google.protobuf.wrappers_pb2 import BytesValue

from cift.runtime.kafka import Event, EventConsumer, admin_client, encode_headers
from cift.stack import kafka_broker
from cift.stack.kafka_retention import (
    BrokerMemoryGuard,
    MemoryPolicy,
    anonymous_bytes,
    committed_offsets,
    newest_batch_starts,
    unread,
)
from cift.stack.ports import free_ports
from cift.stack.processes import Child
from tests.integration.runtime.own_broker import start_broker

pytestmark = pytest.mark.integration

MIB = 2**20
BURST = 30_000  # records of ~1 KB: ~30 MB a burst, far above what the broker needs to run
LIMIT = 24 * MIB


def publish(bootstrap: str, topic: str, tag: str, count: int) -> None:
    """`count` records of ~1 KB, values `tag-i:…`, all acknowledged by the broker."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    headers: list[tuple[str, str | bytes | None]] = list(encode_headers(BytesValue(), "e"))
    filler = os.urandom(1000)
    for i in range(count):
        value = BytesValue(value=f"{tag}-{i}:".encode() + filler).SerializeToString()
        while True:
            try:
                producer.produce(topic, value, key=str(i % 16), headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(60) == 0


def tags(events: list[Event]) -> list[str]:
    return [e.message.value.split(b":", 1)[0].decode() for e in events]  # type: ignore[attr-defined]


async def read_past_newest_batches(bootstrap: str, topic: str, *groups: str) -> None:
    """Return once each group has committed past the start of every partition's newest
    batch: what the guard's next check asks of a group with members."""
    admin = admin_client(bootstrap)
    async with asyncio.timeout(30):
        while True:
            newest = await asyncio.to_thread(newest_batch_starts, admin, [topic])
            committed = [await asyncio.to_thread(committed_offsets, admin, g) for g in groups]
            # A partition a group has no offset on yet is not read (unread() skips it).
            if all(newest.keys() <= offsets.keys() for offsets in committed) and not unread(
                newest, committed
            ):
                return
            await asyncio.sleep(0.05)


class Broker:
    """An embedded broker of the test's own (the shared one must not restart)."""

    def __init__(self, port: int, log: Path, topic: str) -> None:
        self.port, self.log, self.topic = port, log, topic
        self.bootstrap = kafka_broker.bootstrap_address(port)
        self.child: Child | None = None
        self.restarts = 0

    async def start(self) -> None:
        self.child = await start_broker(self.port, self.log, self.topic, partitions=2)

    async def restart(self) -> None:
        """What the supervisor's restart does: stop, start, recreate the topics."""
        await self.stop()
        await self.start()
        self.restarts += 1

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop()

    def memory(self) -> int | None:
        return None if self.child is None else anonymous_bytes(self.child.pid)


class Seen:
    """The tags a group has handled, and a wait for all of a burst's."""

    def __init__(self) -> None:
        self.tags: set[str] = set()
        self.changed = asyncio.Event()

    def add(self, events: list[Event]) -> None:
        self.tags.update(tags(events))
        self.changed.set()

    async def all_of(self, tag: str, timeout_s: float = 90.0) -> None:
        wanted = {f"{tag}-{i}" for i in range(BURST)}
        async with asyncio.timeout(timeout_s):
            while not wanted <= self.tags:
                self.changed.clear()
                await self.changed.wait()


async def test_the_broker_is_restarted_empty_once_read_and_consumers_go_on(
    tmp_path: Path,
) -> None:
    topic = f"test.retention.{uuid.uuid4().hex[:8]}"
    (port,) = free_ports(1)
    broker = Broker(port, tmp_path / "broker.log", topic)
    said: list[str] = []
    received = Seen()

    async def reader(events: list[Event]) -> None:
        received.add(events)

    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(broker.bootstrap, "test", group, [topic], session_timeout_ms=2000)
    release = asyncio.Event()
    slow_got = Seen()

    async def slow(events: list[Event]) -> None:
        # Handles one batch, then holds the next: its group stays behind.
        if slow_got.tags:
            await release.wait()
        slow_got.add(events)

    slow_group = f"slow-{uuid.uuid4().hex[:6]}"
    laggard = EventConsumer(broker.bootstrap, "test", slow_group, [topic], session_timeout_ms=2000)
    tasks: list[asyncio.Task[None]] = []
    try:
        await broker.start()
        await consumer.start()
        tasks.append(asyncio.create_task(consumer.run(reader)))
        guard = BrokerMemoryGuard(
            broker.bootstrap,
            broker.memory,
            broker.restart,
            MemoryPolicy(limit_bytes=LIMIT, interval_s=1.0),
            said.append,
            topics=[topic],
        )
        peaks: list[int] = []
        after: list[int] = []
        for burst in range(3):
            tag = f"burst{burst}"
            await asyncio.to_thread(publish, broker.bootstrap, topic, tag, BURST)
            # The same consumer reads every burst, the ones after each restart included.
            await received.all_of(tag)
            # The first check notes where the partitions end; at the next one the group
            # has committed past that and the broker is over its limit: restarted.
            assert not await guard.check()
            await read_past_newest_batches(broker.bootstrap, topic, group)
            peak = broker.memory()
            assert peak is not None and peak > LIMIT
            peaks.append(peak)
            assert await guard.check()
            freed = broker.memory()
            assert freed is not None
            after.append(freed)
        assert broker.restarts == 3 and len(said) == 3
        # Memory came back every time and did not creep up from cycle to cycle.
        assert all(a < LIMIT / 4 for a in after), (peaks, after)
        assert max(peaks) < min(peaks) * 1.25, peaks

        # A group with members that has not read what it holds keeps the broker up.
        await laggard.start()
        tasks.append(asyncio.create_task(laggard.run(slow)))
        await asyncio.to_thread(publish, broker.bootstrap, topic, "held", BURST)
        await received.all_of("held")
        async with asyncio.timeout(30):
            await slow_got.changed.wait()
        await read_past_newest_batches(broker.bootstrap, topic, group)
        assert not await guard.check()
        assert (broker.memory() or 0) > LIMIT
        assert not await guard.check()
        assert broker.restarts == 3 and "not read yet" in said[-1]
        # Once it has read everything, the broker is restarted again.
        release.set()
        await slow_got.all_of("held")
        await read_past_newest_batches(broker.bootstrap, topic, group, slow_group)
        assert await guard.check()
        assert broker.restarts == 4
    finally:
        release.set()
        await laggard.stop()
        await consumer.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
