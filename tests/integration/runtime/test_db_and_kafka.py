"""The runtime's migrations, outbox relay and Kafka serde against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from opentelemetry.sdk.trace import TracerProvider

from cift.runtime import db
from cift.runtime.errors import FailedPrecondition
from cift.runtime.kafka import (
    EVENT_ID_HEADER,
    SCHEMA_HEADER,
    Event,
    EventConsumer,
    EventProducer,
    ensure_topics,
)
from cift.runtime.outbox import NOTIFY_PREFIX, OutboxRelay, enqueue
from tests.consumers import consumer as consumer_for

pytestmark = pytest.mark.integration

MIGRATIONS = [
    db.Migration("001_orders", "CREATE TABLE orders (id TEXT PRIMARY KEY, qty NUMERIC NOT NULL)"),
    db.Migration(
        "002_orders_symbol", "ALTER TABLE orders ADD COLUMN symbol TEXT NOT NULL DEFAULT ''"
    ),
]


@pytest.fixture
async def schema(infra: Any) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    conn = await asyncpg.connect(infra.database_url)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    await conn.close()


async def test_migrations_apply_once_in_order(infra: Any, schema: str) -> None:
    assert await db.migrate_dsn(infra.database_url, schema, MIGRATIONS) == [
        "001_orders",
        "002_orders_symbol",
    ]
    assert await db.migrate_dsn(infra.database_url, schema, MIGRATIONS) == []
    pool = await db.create_pool(infra.database_url, schema)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO orders (id, qty, symbol) VALUES ('o1', 1.5, 'AAPL')")
        assert await conn.fetchval("SELECT qty FROM orders") == pytest.approx(1.5)
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0  # runtime tables exist
    await pool.close()


async def test_concurrent_migrators_apply_each_file_exactly_once(infra: Any, schema: str) -> None:
    results = await asyncio.gather(
        *(db.migrate_dsn(infra.database_url, schema, MIGRATIONS) for _ in range(4))
    )
    assert sorted(len(applied) for applied in results) == [0, 0, 0, 2]


async def test_an_applied_migration_that_changed_stops_the_service(infra: Any, schema: str) -> None:
    await db.migrate_dsn(infra.database_url, schema, MIGRATIONS[:1])
    edited = [db.Migration("001_orders", "CREATE TABLE orders (id TEXT PRIMARY KEY)")]
    with pytest.raises(FailedPrecondition, match="forward-only"):
        await db.migrate_dsn(infra.database_url, schema, edited)


async def test_failed_migration_leaves_nothing_half_applied(infra: Any, schema: str) -> None:
    broken = [
        *MIGRATIONS,
        db.Migration("003_broken", "ALTER TABLE orders ADD COLUMN x INT; SELECT 1/0"),
    ]
    with pytest.raises(asyncpg.DivisionByZeroError):
        await db.migrate_dsn(infra.database_url, schema, broken)
    conn = await asyncpg.connect(infra.database_url)
    exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.orders")
    await conn.close()
    assert exists is None


async def test_claim_event_lets_each_event_through_once(infra: Any, schema: str) -> None:
    await db.migrate_dsn(infra.database_url, schema, [])
    pool = await db.create_pool(infra.database_url, schema)
    async with pool.acquire() as conn:
        assert await db.claim_event(conn, "ledger", "fill-1") is True
        assert await db.claim_event(conn, "ledger", "fill-1") is False
        assert await db.claim_event(conn, "audit", "fill-1") is True
    await pool.close()


async def _collect(consumer: EventConsumer, count: int, timeout_s: float = 30.0) -> list[Event]:
    received: list[Event] = []
    done = asyncio.Event()

    async def handler(events: list[Event]) -> None:
        received.extend(events)
        if len(received) >= count:
            done.set()

    task = asyncio.create_task(consumer.run(handler))
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        await consumer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return received


async def _collect_new_group(infra: Any, topic: str, count: int) -> list[Event]:
    """The first `count` events of `topic`, read by a consumer group of its own."""
    consumer = consumer_for(infra, f"g-{uuid.uuid4().hex[:6]}", [topic])
    await consumer.start()
    return await _collect(consumer, count, timeout_s=20.0)


@asynccontextmanager
async def outbox_to_new_topic(
    infra: Any, schema: str
) -> AsyncIterator[tuple[str, asyncpg.Pool, EventProducer]]:
    """A fresh one-partition topic, a pool on `schema` (with its outbox) and a producer."""
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=1)
    await db.migrate_dsn(infra.database_url, schema, [])
    pool = await db.create_pool(infra.database_url, schema)
    producer = EventProducer(infra.kafka_bootstrap, "test")
    await producer.start()
    try:
        yield topic, pool, producer
    finally:
        await producer.stop()
        await pool.close()


async def test_outbox_publishes_committed_events_only_in_order_with_headers(
    infra: Any, schema: str
) -> None:
    tracer = TracerProvider().get_tracer("test")  # a real tracer: spans have valid ids
    async with outbox_to_new_topic(infra, schema) as (topic, pool, producer):
        with tracer.start_as_current_span("submit") as span:
            async with pool.acquire() as conn, conn.transaction():
                for text in ("first", "second", "third"):
                    await enqueue(conn, topic, "acct-1", StringValue(value=text))
        with pytest.raises(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, topic, "acct-1", StringValue(value="rolled back"))
                raise RuntimeError("the change failed, so its event must not leave")
        relay = OutboxRelay(pool, producer)
        assert await relay.relay_once() == 3
        assert await relay.relay_once() == 0
        consumer = consumer_for(infra, f"g-{uuid.uuid4().hex[:6]}", [topic])
        await consumer.start()
        events = await _collect(consumer, 3)
    assert [event.message.value for event in events] == ["first", "second", "third"]  # type: ignore[attr-defined]
    assert all(event.key == "acct-1" for event in events)
    headers = dict(events[0].headers)
    assert headers[SCHEMA_HEADER] == b"google.protobuf.StringValue"
    assert len({dict(e.headers)[EVENT_ID_HEADER] for e in events}) == 3
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in headers["traceparent"].decode()  # the request's trace continues in Kafka


async def test_an_outbox_commit_wakes_only_the_relay_of_its_own_schema(
    infra: Any, schema: str
) -> None:
    """Services share one database: each schema's relay must hear its own commits only."""
    other = f"{schema}_other"
    heard: dict[str, int] = {schema: 0, other: 0}
    mine_heard = asyncio.Event()

    def on_notify(_conn: object, _pid: int, channel: str, _payload: str) -> None:
        heard[channel.removeprefix(NOTIFY_PREFIX)] += 1
        if channel == NOTIFY_PREFIX + schema:
            mine_heard.set()

    listener = await asyncpg.connect(infra.database_url)
    pools = []
    try:
        for name in (schema, other):
            await db.migrate_dsn(infra.database_url, name, [])
            pools.append(await db.create_pool(infra.database_url, name))
            await listener.add_listener(NOTIFY_PREFIX + name, on_notify)
        async with pools[0].acquire() as conn, conn.transaction():
            await enqueue(conn, "test.nowhere", "k", StringValue(value="only mine"))
        await asyncio.wait_for(mine_heard.wait(), 10)
        await asyncio.sleep(0.3)  # time enough for a stray notification to arrive too
        assert heard == {schema: 1, other: 0}
    finally:
        await listener.close()
        for pool in pools:
            await pool.close()
        cleanup = await asyncpg.connect(infra.database_url)
        await cleanup.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        await cleanup.close()


async def test_the_relay_publishes_as_soon_as_its_schema_commits(infra: Any, schema: str) -> None:
    async with outbox_to_new_topic(infra, schema) as (topic, pool, producer):
        # Polls only once a minute: within the test's wait, only the notification can wake it.
        relay = asyncio.create_task(OutboxRelay(pool, producer, poll_s=60.0).run())
        try:
            await asyncio.sleep(0.5)  # the relay drained the empty outbox and now listens
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, topic, "acct-1", StringValue(value="woken"))
            events = await _collect_new_group(infra, topic, 1)
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
    assert [event.message.value for event in events] == ["woken"]  # type: ignore[attr-defined]


async def test_commits_within_the_relays_pace_share_one_pass_and_a_quiet_one_goes_at_once(
    infra: Any, schema: str
) -> None:
    async with outbox_to_new_topic(infra, schema) as (topic, pool, producer):
        relay = OutboxRelay(pool, producer, poll_s=60.0, pace_s=0.5)
        passes: list[int] = []
        relay_once = relay.relay_once

        async def counted_relay_once() -> int:
            moved = await relay_once()
            if moved:
                passes.append(moved)
            return moved

        relay.relay_once = counted_relay_once  # type: ignore[method-assign]
        running = asyncio.create_task(relay.run())
        try:
            await asyncio.sleep(0.8)  # drained the empty outbox, then quiet for over a pace
            for text in ("first", "second", "third", "fourth"):
                async with pool.acquire() as conn, conn.transaction():
                    await enqueue(conn, topic, "acct-1", StringValue(value=text))
                if text == "first":
                    # After a quiet spell the first commit is relayed at once.
                    for _ in range(40):
                        if passes:
                            break
                        await asyncio.sleep(0.01)
                    assert passes == [1]
                await asyncio.sleep(0.05)
            events = await _collect_new_group(infra, topic, 4)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    # Three commits 50 ms apart, within the pace of the first's pass: one pass more.
    assert passes == [1, 3]
    assert [event.message.value for event in events] == ["first", "second", "third", "fourth"]  # type: ignore[attr-defined]


async def test_consumer_retries_a_failing_batch_and_commits_after_success(infra: Any) -> None:
    topic = f"test.retry.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=1)
    producer = EventProducer(infra.kafka_bootstrap, "test")
    await producer.start()
    await producer.publish(topic, "k", StringValue(value="once"), event_id="evt-1")
    await producer.stop()
    group = f"g-{uuid.uuid4().hex[:6]}"
    attempts: list[str] = []
    done = asyncio.Event()

    async def flaky(events: list[Event]) -> None:
        attempts.extend(event.event_id for event in events)
        if len(attempts) == 1:
            raise ConnectionError("database blip")
        done.set()

    consumer = consumer_for(infra, group, [topic])
    await consumer.start()
    task = asyncio.create_task(consumer.run(flaky))
    await asyncio.wait_for(done.wait(), 30)
    await consumer.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert attempts == ["evt-1", "evt-1"]

    # The committed offset means a restarted member of the group sees nothing again:
    # an event published once it has joined reaches it, and nothing from before it
    # (one partition, read in order; without the commit it would start at evt-1).
    again = consumer_for(infra, group, [topic])
    redelivered: list[Event] = []
    after_restart = asyncio.Event()

    async def record(events: list[Event]) -> None:
        for event in events:
            if event.event_id == "evt-2":
                after_restart.set()
            else:
                redelivered.append(event)

    # Services spawn the run loop in setup, before the runtime starts the consumer.
    task = asyncio.create_task(again.run(record))
    await asyncio.sleep(0.1)
    await again.start()  # returns once joined, positioned at the committed offset
    producer = EventProducer(infra.kafka_bootstrap, "test")
    await producer.start()
    await producer.publish(topic, "k", StringValue(value="later"), event_id="evt-2")
    await producer.stop()
    await asyncio.wait_for(after_restart.wait(), 30)
    await again.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert redelivered == []
