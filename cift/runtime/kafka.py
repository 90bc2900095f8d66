"""Kafka in and out with protobuf values, schema headers and trace context.

Every message carries `cift-schema` (the protobuf full name of its value),
`cift-event-id` (unique; consumers deduplicate on it) and the W3C trace context.
The broker keeps offsets in memory only (Tansu locally), so consumers must be
idempotent: commit after the effect, deduplicate by event id, tolerate replays.
aiokafka's idempotent/transactional producers do not work against Tansu, so
exactly-once effects come from the outbox and idempotent consumers instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from google.protobuf import symbol_database
from google.protobuf.message import DecodeError, Message
from opentelemetry import context as otel_context
from opentelemetry import trace

from cift.runtime.metrics import KAFKA_EVENTS
from cift.runtime.tracing import extract_headers, inject_headers

log = logging.getLogger(__name__)

SCHEMA_HEADER = "cift-schema"
EVENT_ID_HEADER = "cift-event-id"

TOPIC_TICKS = "marketdata.ticks.v1"
TOPIC_BARS = "marketdata.bars.v1"
TOPIC_ORDERS = "execution.orders.v1"
TOPIC_FILLS = "execution.fills.v1"
TOPIC_RISK_EVENTS = "risk.events.v1"
TOPICS = (TOPIC_TICKS, TOPIC_BARS, TOPIC_ORDERS, TOPIC_FILLS, TOPIC_RISK_EVENTS)


def new_event_id() -> str:
    return uuid.uuid4().hex


def encode_headers(
    message: Message, event_id: str, extra: Iterable[tuple[str, bytes]] = ()
) -> list[tuple[str, bytes]]:
    headers = [
        (SCHEMA_HEADER, message.DESCRIPTOR.full_name.encode()),
        (EVENT_ID_HEADER, event_id.encode()),
        *extra,
    ]
    inject_headers(headers)
    return headers


def decode_message(value: bytes, headers: Sequence[tuple[str, bytes]]) -> Message:
    """Decode a value by the schema named in its header (the stubs must be imported)."""
    schema = dict(headers).get(SCHEMA_HEADER, b"").decode()
    if not schema:
        raise DecodeError("message has no cift-schema header")
    try:
        message_class = symbol_database.Default().GetSymbol(schema)
    except KeyError:
        raise DecodeError(f"unknown schema {schema!r}; import its _pb2 module") from None
    message: Message = message_class()
    message.ParseFromString(value)
    return message


@dataclass(frozen=True)
class Event:
    """One consumed Kafka record, decoded."""

    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    message: Message
    headers: tuple[tuple[str, bytes], ...] = field(default=())


class EventProducer:
    """Publishes protobuf events; one per process, shared by every publisher."""

    def __init__(self, bootstrap: str, service: str, *, linger_ms: int = 2) -> None:
        self.service = service
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"cift-{service}",
            linger_ms=linger_ms,
            acks="all",
            max_batch_size=1 << 20,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(
        self,
        topic: str,
        key: str,
        message: Message,
        *,
        event_id: str | None = None,
        wait: bool = True,
    ) -> None:
        """Send one event; with wait=False only enqueue it in the producer's batch."""
        headers = encode_headers(message, event_id or new_event_id())
        future = await self._producer.send(
            topic, value=message.SerializeToString(), key=key.encode(), headers=headers
        )
        KAFKA_EVENTS.labels(self.service, topic, "out").inc()
        if wait:
            await future

    async def publish_raw(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        """Send a pre-encoded record (the outbox relay); returns the delivery future."""
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key.encode(), headers=headers
        )
        KAFKA_EVENTS.labels(self.service, topic, "out").inc()
        return future

    async def flush(self) -> None:
        await self._producer.flush()


EventHandler = Callable[[list[Event]], Awaitable[None]]


class EventConsumer:
    """A consumer-group member that hands decoded batches to a handler, then commits.

    Offsets are committed only after the handler returns, so a crash replays the
    batch; handlers deduplicate by `Event.event_id` (see `db.claim_event`).
    """

    def __init__(
        self,
        bootstrap: str,
        service: str,
        group: str,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        max_batch: int = 500,
    ) -> None:
        self.service = service
        self.group = group
        self.max_batch = max_batch
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"cift-{service}-{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        self._stopping = asyncio.Event()
        # run() may be spawned in a service's setup, before the runtime starts the
        # consumer; it waits for start() instead of polling an unstarted client.
        self._started = asyncio.Event()

    async def start(self) -> None:
        await self._consumer.start()
        self._started.set()

    async def stop(self) -> None:
        self._stopping.set()
        try:
            await self._consumer.commit()
        except KafkaError:
            log.warning("final offset commit failed", extra={"group": self.group})
        await self._consumer.stop()

    async def run(self, handler: EventHandler) -> None:
        """Consume until stopped. A handler error is logged and the batch retried.

        May be spawned before `start()` (services wire consumers in setup and the
        runtime starts them afterwards); it waits for the group join.
        """
        await self._started.wait()
        tracer = trace.get_tracer("cift.kafka")
        await self._started.wait()
        while not self._stopping.is_set():
            records = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            batch: list[Event] = []
            for partition, partition_records in records.items():
                for record in partition_records:
                    headers = tuple(record.headers or ())
                    try:
                        message = decode_message(record.value or b"", headers)
                    except DecodeError as exc:
                        log.error(
                            "skipping undecodable record",
                            extra={"topic": partition.topic, "error": str(exc)},
                        )
                        continue
                    header_map = dict(headers)
                    batch.append(
                        Event(
                            topic=partition.topic,
                            partition=partition.partition,
                            offset=record.offset,
                            key=(record.key or b"").decode(),
                            event_id=header_map.get(EVENT_ID_HEADER, b"").decode()
                            or f"{partition.topic}:{partition.partition}:{record.offset}",
                            message=message,
                            headers=headers,
                        )
                    )
            if not batch:
                continue
            # The first event's trace context parents the batch's span.
            parent = extract_headers(batch[0].headers)
            token = otel_context.attach(parent)
            try:
                with tracer.start_as_current_span(
                    f"consume {batch[0].topic}",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={"messaging.batch.message_count": len(batch)},
                ):
                    await self._handle_with_retry(handler, batch)
            finally:
                otel_context.detach(token)
            for event in batch:
                KAFKA_EVENTS.labels(self.service, event.topic, "in").inc()
            await self._consumer.commit()

    async def _handle_with_retry(self, handler: EventHandler, batch: list[Event]) -> None:
        delay_s = 0.1
        while True:
            try:
                await handler(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping.is_set():
                    raise
                log.exception("event handler failed; retrying batch", extra={"group": self.group})
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)


async def ensure_topics(
    bootstrap: str, topics: Sequence[str] = TOPICS, *, partitions: int = 3
) -> None:
    """Create missing topics (idempotent)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in topics
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
