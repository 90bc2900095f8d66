"""The outbox after outages: a broker that lost what it acknowledged, a database that restarted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from cift.runtime import db
from cift.runtime.kafka import Event, EventConsumer, EventProducer, ensure_topics
from cift.runtime.outbox import NOTIFY_PREFIX, OutboxRelay, enqueue
from cift.stack import kafka_broker
from cift.stack.ports import free_ports
from cift.stack.processes import Child
from tests.integration.runtime.own_broker import start_broker

pytestmark = pytest.mark.integration


@pytest.fixture
async def schema(infra: Any) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    conn = await asyncpg.connect(infra.database_url)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    await conn.close()


async def values_on(bootstrap: str, topic: str, count: int) -> list[str]:
    """The values of the first `count` records of `topic` (fails after 30 s)."""
    received: list[str] = []
    enough = asyncio.Event()

    async def handler(events: list[Event]) -> None:
        received.extend(e.message.value for e in events)  # type: ignore[attr-defined]
        if len(received) >= count:
            enough.set()

    # Every broker here is an embedded one: its services' short session, a quick join.
    consumer = EventConsumer(
        bootstrap,
        "test",
        f"g-{uuid.uuid4().hex[:6]}",
        [topic],
        session_timeout_ms=kafka_broker.SESSION_TIMEOUT_MS,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run(handler))
    try:
        await asyncio.wait_for(enough.wait(), 30.0)
    finally:
        await consumer.stop()
        await asyncio.gather(task, return_exceptions=True)
    return received


async def enqueue_values(pool: asyncpg.Pool, topic: str, values: list[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for value in values:
            await enqueue(conn, topic, "acct-1", StringValue(value=value))


@dataclass
class LosingBroker:
    """A broker of the test's own that restarts empty, and an outbox publishing to it."""

    topic: str
    port: int
    log: Path
    broker: Child
    pool: asyncpg.Pool
    producer: EventProducer

    @property
    def bootstrap(self) -> str:
        return kafka_broker.bootstrap_address(self.port)

    async def restart(self) -> None:
        """Stop it and start it again, empty (it keeps memory only)."""
        await self.broker.stop()
        self.broker = await start_broker(self.port, self.log, self.topic)


@pytest.fixture
async def losing(infra: Any, schema: str, tmp_path: Path) -> AsyncIterator[LosingBroker]:
    topic = f"test.lost.{uuid.uuid4().hex[:8]}"
    (port,) = free_ports(1)
    log = tmp_path / "broker.log"
    broker = await start_broker(port, log, topic)
    await db.migrate_dsn(infra.database_url, schema, [])
    pool = await db.create_pool(infra.database_url, schema)
    producer = EventProducer(kafka_broker.bootstrap_address(port), "test")
    await producer.start()
    losing = LosingBroker(topic, port, log, broker, pool, producer)
    try:
        yield losing
    finally:
        await producer.stop()
        await pool.close()
        await losing.broker.stop()


async def test_events_a_restarted_broker_lost_are_relayed_again(losing: LosingBroker) -> None:
    topic = losing.topic
    relay = OutboxRelay(losing.pool, losing.producer)
    await enqueue_values(losing.pool, topic, ["first", "second", "third"])
    assert await relay.relay_once() == 3
    # The broker acknowledged all three, then restarts empty.
    await losing.restart()
    await enqueue_values(losing.pool, topic, ["fourth"])
    assert await relay.relay_once() == 1  # offset 0 again: the broker started over
    assert await relay.relay_again() == 4
    assert await relay.relay_once() == 4
    values = await values_on(losing.bootstrap, topic, 5)
    # Every committed event is on the new broker; "fourth" twice, which consumers dedupe.
    assert values == ["fourth", "first", "second", "third", "fourth"]


async def test_a_broker_restarted_after_the_last_event_gets_it_again(
    losing: LosingBroker,
) -> None:
    # Nothing is published after the restart, so no offset can go back: only the new
    # broker's cluster id tells the relay that its store is not the one it published to.
    topic, producer = losing.topic, losing.producer
    running = asyncio.create_task(OutboxRelay(losing.pool, producer, poll_s=0.2).run())
    try:
        await enqueue_values(losing.pool, topic, ["last", "burst"])
        assert await values_on(losing.bootstrap, topic, 2) == ["last", "burst"]
        first_cluster = await producer.cluster_id()
        await losing.restart()
        assert await producer.cluster_id() != first_cluster  # a new store, a new id
        values = await values_on(losing.bootstrap, topic, 2)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert values == ["last", "burst"]


async def test_a_relay_that_kept_its_broker_relays_nothing_again(infra: Any, schema: str) -> None:
    topic = f"test.kept.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=1)
    await db.migrate_dsn(infra.database_url, schema, [])
    pool = await db.create_pool(infra.database_url, schema)
    producer = EventProducer(infra.kafka_bootstrap, "test")
    await producer.start()
    relay = OutboxRelay(pool, producer)
    try:
        for value in ("a", "b", "c"):
            await enqueue_values(pool, topic, [value])
            assert await relay.relay_once() == 1
        # Relayed rows are kept for re-relay but never published twice on their own.
        assert await relay.relay_once() == 0
        assert (
            await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 3
        )
    finally:
        await producer.stop()
        await pool.close()


async def test_the_relay_rides_out_a_lost_database_connection(infra: Any, schema: str) -> None:
    topic = f"test.reconnect.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=1)
    await db.migrate_dsn(infra.database_url, schema, [])
    pool = await db.create_pool(infra.database_url, schema)
    producer = EventProducer(infra.kafka_bootstrap, "test")
    await producer.start()
    running = asyncio.create_task(OutboxRelay(pool, producer, poll_s=0.2).run())
    try:
        await enqueue_values(pool, topic, ["before"])
        await asyncio.sleep(0.5)
        # What a PostgreSQL restart does to the relay's listening connection.
        admin = await asyncpg.connect(infra.database_url)
        terminated = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            f"LISTEN %{NOTIFY_PREFIX}{schema}%",
        )
        assert terminated == 1
        await admin.close()
        await asyncio.sleep(0.5)
        await enqueue_values(pool, topic, ["after"])
        values = await values_on(infra.kafka_bootstrap, topic, 2)
        assert not running.done(), "the relay gave up after losing its connection"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await producer.stop()
        await pool.close()
    assert values == ["before", "after"]
