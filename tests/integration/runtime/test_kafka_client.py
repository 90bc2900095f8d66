"""The runtime's librdkafka producer and consumer against the real embedded broker.

What the services rely on: records keep key, event id, schema and trace context;
offsets are committed only after the handler's effect, so a failing or interrupted
handler sees its records again; a consumer that starts at the live end sees every
record published after `start()` returns; stop is prompt and leaves nothing running.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.wrappers_pb2 import Int64Value, StringValue
from opentelemetry.sdk.trace import TracerProvider

from cift.runtime.kafka import (
    EVENT_ID_HEADER,
    SCHEMA_HEADER,
    Event,
    EventConsumer,
    EventProducer,
    Records,
    ensure_topics,
)
from tests.consumers import consumer as consumer_for

pytestmark = pytest.mark.integration


async def _topic(infra: Any, partitions: int = 1) -> str:
    topic = f"test.ck.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=partitions)
    return topic


async def _producer(infra: Any) -> EventProducer:
    producer = EventProducer(infra.kafka_bootstrap, "test")
    await producer.start()
    return producer


class Recorder:
    """A handler that records batches and can fail on demand."""

    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[Event]] = []
        self.fail_times = fail_times
        self.changed = asyncio.Event()

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]

    async def __call__(self, events: list[Event]) -> None:
        self.batches.append(list(events))
        self.changed.set()
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("the effect's database is away")

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        await self.wait_until(lambda: len(self.events) >= count, timeout_s)

    async def wait_until(self, reached: Callable[[], bool], timeout_s: float = 30.0) -> None:
        async def wait() -> None:
            while not reached():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout_s)


async def _run(consumer: EventConsumer, handler: Recorder) -> asyncio.Task[None]:
    await consumer.start()
    return asyncio.create_task(consumer.run(handler))


async def _stop(consumer: EventConsumer, task: asyncio.Task[None]) -> None:
    await consumer.stop()
    # run() returns by itself once stopped (raising if its handler was still failing).
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5.0)


async def _read(infra: Any, topic: str, count: int) -> list[Event]:
    """The first `count` events of `topic`, read from the start by a group of its own."""
    recorder = Recorder()
    consumer = consumer_for(infra, f"g-{uuid.uuid4().hex[:6]}", [topic])
    task = await _run(consumer, recorder)
    try:
        await recorder.wait_for(count)
    finally:
        await _stop(consumer, task)
    return recorder.events


async def test_records_keep_key_event_id_schema_and_trace(infra: Any) -> None:
    topic = await _topic(infra, partitions=3)
    producer = await _producer(infra)
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("submit") as span:
            await producer.publish(topic, "acct-1", StringValue(value="acked"), event_id="e-1")
            await producer.publish(topic, "acct-1", Int64Value(value=7), wait=False)
            delivered = await producer.publish_raw(
                topic,
                "acct-1",
                StringValue(value="raw").SerializeToString(),
                [(SCHEMA_HEADER, b"google.protobuf.StringValue"), (EVENT_ID_HEADER, b"e-3")],
            )
            await producer.send(
                topic,
                [
                    (
                        "acct-1",
                        StringValue(value=f"bulk-{n}").SerializeToString(),
                        [
                            (SCHEMA_HEADER, b"google.protobuf.StringValue"),
                            (EVENT_ID_HEADER, b"bulk-%d" % n),
                        ],
                    )
                    for n in range(3)
                ],
            )
        await asyncio.wait_for(delivered, 10.0)
        await producer.flush()
    finally:
        await producer.stop()

    events = await _read(infra, topic, 6)
    # One key, one partition: publication order is kept.
    assert len({event.partition for event in events}) == 1
    assert [type(e.message).__name__ for e in events] == ["StringValue", "Int64Value"] + [
        "StringValue"
    ] * 4
    assert [e.message.value for e in events] == [  # type: ignore[attr-defined]
        "acked",
        7,
        "raw",
        "bulk-0",
        "bulk-1",
        "bulk-2",
    ]
    assert all(event.key == "acct-1" for event in events)
    assert [events[0].event_id, events[2].event_id, events[3].event_id] == ["e-1", "e-3", "bulk-0"]
    assert len(events[1].event_id) == 32  # a generated uuid
    headers = dict(events[0].headers)
    assert headers[SCHEMA_HEADER] == b"google.protobuf.StringValue"
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in headers["traceparent"].decode()
    assert [e.offset for e in events] == sorted(e.offset for e in events)


async def test_a_failing_handler_is_retried_and_an_interrupted_one_redelivered(
    infra: Any,
) -> None:
    topic = await _topic(infra)
    group = f"g-{uuid.uuid4().hex[:6]}"
    producer = await _producer(infra)
    try:
        for n in range(3):
            await producer.publish(topic, "k", StringValue(value=f"v{n}"), event_id=f"e{n}")
    finally:
        await producer.stop()

    # 1. The handler fails twice, then succeeds: the same records come back each time.
    flaky = Recorder(fail_times=2)
    consumer = consumer_for(infra, group, [topic])
    task = await _run(consumer, flaky)
    await flaky.wait_until(
        lambda: any(e.event_id == "e2" for batch in flaky.batches[2:] for e in batch)
    )
    await _stop(consumer, task)
    ids = [[event.event_id for event in batch] for batch in flaky.batches]
    assert ids[0] == ids[1] == ids[2] and ids[0][0] == "e0"
    assert [i for batch in ids[2:] for i in batch] == ["e0", "e1", "e2"]

    # 2. Committed after success: a new member of the group gets only what comes next.
    async with _publisher(infra) as publish:
        await publish(topic, "e3")
    again = Recorder(fail_times=1000)  # this member never completes the effect
    consumer = consumer_for(infra, group, [topic])
    task = await _run(consumer, again)
    await again.wait_for(1)
    await _stop(consumer, task)
    assert {event.event_id for event in again.events} == {"e3"}

    # 3. Nothing was committed for e3, so the next member of the group receives it again.
    last = Recorder()
    consumer = consumer_for(infra, group, [topic])
    task = await _run(consumer, last)
    await last.wait_for(1)
    await asyncio.sleep(0.5)
    await _stop(consumer, task)
    assert [event.event_id for event in last.events] == ["e3"]


class _publisher:
    """`async with _publisher(infra) as publish: await publish(topic, event_id)`."""

    def __init__(self, infra: Any) -> None:
        self.infra = infra

    async def __aenter__(self) -> Any:
        self.producer = await _producer(self.infra)

        async def publish(topic: str, event_id: str) -> None:
            await self.producer.publish(topic, "k", StringValue(value=event_id), event_id=event_id)

        return publish

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()


async def test_a_live_end_consumer_sees_everything_published_after_start(infra: Any) -> None:
    topic = await _topic(infra, partitions=3)
    async with _publisher(infra) as publish:
        await publish(topic, "before")
        recorder = Recorder()
        consumer = consumer_for(
            infra,
            f"g-{uuid.uuid4().hex[:6]}",
            [topic],
            from_beginning=False,
        )
        task = await _run(consumer, recorder)
        try:
            # Immediately after start(): positions are already resolved.
            await publish(topic, "after")
            await recorder.wait_for(1)
            await asyncio.sleep(0.5)
        finally:
            await _stop(consumer, task)
    assert [event.event_id for event in recorder.events] == ["after"]


async def test_stop_is_prompt_and_leaves_no_thread_running(infra: Any) -> None:
    topic = await _topic(infra)
    before = {thread.name for thread in threading.enumerate()}
    consumer = consumer_for(infra, f"g-{uuid.uuid4().hex[:6]}", [topic])
    recorder = Recorder()
    task = await _run(consumer, recorder)
    await asyncio.sleep(0.5)  # idle: the consumer thread is blocked in a fetch
    started = time.monotonic()
    await _stop(consumer, task)
    assert time.monotonic() - started < 2.0
    assert task.done() and task.exception() is None
    await asyncio.sleep(0.1)
    left = {thread.name for thread in threading.enumerate()} - before
    assert not [name for name in left if name.startswith("kafka-")]

    # Cancelling run() first (the runtime's drain order) and then stopping is clean too.
    consumer = consumer_for(infra, f"g-{uuid.uuid4().hex[:6]}", [topic])
    task = await _run(consumer, recorder)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(consumer.stop(), 5.0)
    await consumer.stop()  # idempotent


class AcknowledgementCounter(EventProducer):
    """Counts the broker's acknowledgements of records sent without a future (`send`).

    Counted as librdkafka reports each one, before the producer's own bookkeeping: a
    flush that returns with fewer counted than sent returned before the broker took them.
    (librdkafka's `len()` is no witness: it still counts a record while its report runs.)
    """

    def __init__(self, bootstrap: str) -> None:
        self.acknowledged = 0
        super().__init__(bootstrap, "test")

    def _on_fire_and_forget(self, error: Any, record: Any) -> None:
        if error is None:
            self.acknowledged += 1
        super()._on_fire_and_forget(error, record)


async def test_flush_returns_once_every_record_sent_before_it_is_acknowledged(
    infra: Any,
) -> None:
    topic = await _topic(infra, partitions=3)
    producer = AcknowledgementCounter(infra.kafka_bootstrap)
    await producer.start()
    headers = [(SCHEMA_HEADER, b"google.protobuf.StringValue")]
    value = StringValue(value="tick").SerializeToString()
    try:
        for round_ in range(1, 6):
            await producer.send(topic, [(f"k{n}", value, headers) for n in range(2_000)])
            if round_ % 2:
                await producer.flush()
            else:  # two waiters at once (the feed's batch in flight and a drain)
                await asyncio.gather(producer.flush(), producer.flush())
            assert producer.acknowledged == 2_000 * round_, (
                "flush returned before the broker's acks"
            )
        await producer.flush()  # nothing in flight: returns at once
    finally:
        await producer.stop()
    assert len(await _read(infra, topic, 10_000)) == 10_000


async def test_an_undecodable_record_is_skipped_and_committed_past(infra: Any) -> None:
    topic = await _topic(infra)
    group = f"g-{uuid.uuid4().hex[:6]}"
    producer = await _producer(infra)
    try:
        await producer.send(topic, [("k", b"\x01\x02", [(SCHEMA_HEADER, b"no.such.Schema")])])
        await producer.publish(topic, "k", StringValue(value="good"), event_id="good")
        await producer.flush()
    finally:
        await producer.stop()
    recorder = Recorder()
    consumer = consumer_for(infra, group, [topic])
    task = await _run(consumer, recorder)
    await recorder.wait_for(1)
    await _stop(consumer, task)
    assert [event.event_id for event in recorder.events] == ["good"]


async def test_run_records_hands_over_values_retries_and_commits_after_the_handler(
    infra: Any,
) -> None:
    topic = await _topic(infra, partitions=2)
    group = f"g-{uuid.uuid4().hex[:6]}"
    async with _publisher(infra) as publish:
        for n in range(4):
            await publish(topic, f"r{n}")
    seen: list[Records] = []
    failures = [1]
    changed = asyncio.Event()

    async def handler(records: Records) -> None:
        seen.append(records)
        changed.set()
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("the effect's database is away")

    def values() -> list[str]:
        # Only batches after the failed one: each value appears exactly once there.
        return sorted(StringValue.FromString(v).value for r in seen[1:] for v in r.values)

    consumer = consumer_for(infra, group, [topic])
    await consumer.start()
    task = asyncio.create_task(consumer.run_records(handler))
    while values() != ["r0", "r1", "r2", "r3"]:
        changed.clear()
        await asyncio.wait_for(changed.wait(), 30.0)
    await _stop(consumer, task)
    # The failed batch came back whole: same partitions, same values.
    assert seen[0].topic == topic and seen[0] == seen[1]
    assert all(len(r.partitions) == len(r.values) for r in seen)
    assert {p for r in seen for p in r.partitions} <= {0, 1}

    # Committed after the handler returned: the group's next member starts past them.
    async with _publisher(infra) as publish:
        await publish(topic, "r4")
    seen.clear()
    consumer = consumer_for(infra, group, [topic])
    await consumer.start()
    task = asyncio.create_task(consumer.run_records(handler))
    while not seen:
        changed.clear()
        await asyncio.wait_for(changed.wait(), 30.0)
    await asyncio.sleep(0.5)
    await _stop(consumer, task)
    assert [StringValue.FromString(v).value for r in seen for v in r.values] == ["r4"]


async def test_run_records_takes_exactly_one_topic(infra: Any) -> None:
    consumer = consumer_for(infra, "g-two", ["a.t", "b.t"])
    with pytest.raises(ValueError, match="exactly one topic"):
        await consumer.run_records(lambda records: asyncio.sleep(0))
