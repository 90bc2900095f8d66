"""Kafka in and out with protobuf values, schema headers and trace context.

Every message carries `cift-schema` (the protobuf full name of its value),
`cift-event-id` (unique; consumers deduplicate on it) and the W3C trace context.
The broker keeps offsets in memory only (Tansu locally), so consumers must be
idempotent: commit after the effect, deduplicate by event id, tolerate replays.
Idempotent/transactional producers do not work against Tansu, so exactly-once
effects come from the outbox and idempotent consumers instead.

The client is librdkafka (confluent-kafka): its record encoding, batching and
fetching run in C, about ten times cheaper per record than a pure-Python client,
which is what lets the tick topic carry 100k+ records/s with one record per tick.
Its calls block, so they never run on the event loop: each consumer owns one
thread that makes every call on its handle (fetch, decode, commit, close), and the
producer enqueues without blocking on the loop while a thread serves delivery
reports. Keys are partitioned with murmur2, the Java client's (and the previous
client's) hash, so a symbol or account keeps its partition across clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from google.protobuf import symbol_database
from google.protobuf.message import DecodeError, Message
from opentelemetry import context as otel_context
from opentelemetry import trace

from cift.runtime.metrics import KAFKA_CONSUME_DELAY, KAFKA_CONSUMER_LAG, KAFKA_EVENTS
from cift.runtime.tracing import extract_headers, inject_headers

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection trouble, rebalances) go through this logger.
CLIENT_LOG = logging.getLogger("cift.runtime.kafka.librdkafka")


class _RetriedConnectionFailure(logging.Filter):
    """librdkafka's FAIL lines (a connection refused or dropped) are warnings, not errors.

    librdkafka logs each failed connection at error level and then retries it by itself,
    and its error callback reports the same failure, which `_log_client_error` already
    logs as a warning. A broker restart (`cift restart kafka`, or the embedded broker's
    memory bound) is no error of the services.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # confluent-kafka logs ("%s [%s] %s", facility, client name, message).
        args = record.args
        if record.levelno > logging.WARNING and isinstance(args, tuple) and args[:1] == ("FAIL",):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


CLIENT_LOG.addFilter(_RetriedConnectionFailure())

SCHEMA_HEADER = "cift-schema"
EVENT_ID_HEADER = "cift-event-id"

TOPIC_TICKS = "marketdata.ticks.v1"
TOPIC_BARS = "marketdata.bars.v1"
TOPIC_ORDERS = "execution.orders.v1"
TOPIC_FILLS = "execution.fills.v1"
TOPIC_RISK_EVENTS = "risk.events.v1"
TOPICS = (TOPIC_TICKS, TOPIC_BARS, TOPIC_ORDERS, TOPIC_FILLS, TOPIC_RISK_EVENTS)

# How long one blocking fetch waits for a first record: also the longest a stop
# waits for the consumer thread to come back.
POLL_TIMEOUT_S = 0.2
# How often a flush looks at the delivery count again if no wake-up came (a safety net:
# the last delivery report wakes it).
FLUSH_RECHECK_S = 0.1
# How long start() and ensure_topics wait for the broker before giving up.
CONNECT_TIMEOUT_S = 10.0
# How long start() waits for the group to hand this member its partitions.
JOIN_TIMEOUT_S = 30.0

Headers = list[tuple[str, bytes]]
# What librdkafka's produce() accepts (its stub types the list's values wider).
_ClientHeaders = list[tuple[str, str | bytes | None]]


def new_event_id() -> str:
    return uuid.uuid4().hex


def encode_headers(
    message: Message, event_id: str, extra: Iterable[tuple[str, bytes]] = ()
) -> Headers:
    headers = [
        (SCHEMA_HEADER, message.DESCRIPTOR.full_name.encode()),
        (EVENT_ID_HEADER, event_id.encode()),
        *extra,
    ]
    inject_headers(headers)
    return headers


# Schema header value -> message class; the symbol database lookup is the slow part.
_message_classes: dict[bytes, Any] = {}


def _message_class(schema: bytes) -> Any:
    message_class = _message_classes.get(schema)
    if message_class is None:
        if not schema:
            raise DecodeError("message has no cift-schema header")
        name = schema.decode(errors="replace")
        try:
            message_class = symbol_database.Default().GetSymbol(name)
        except KeyError:
            raise DecodeError(f"unknown schema {name!r}; import its _pb2 module") from None
        _message_classes[schema] = message_class
    return message_class


def decode_message(value: bytes, headers: Sequence[tuple[str, bytes]]) -> Message:
    """Decode a value by the schema named in its header (the stubs must be imported)."""
    message: Message = _message_class(dict(headers).get(SCHEMA_HEADER, b"")).FromString(value)
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


_new_object = object.__new__
_set_attribute = object.__setattr__


def _event(
    topic: str,
    partition: int,
    offset: int,
    key: str,
    event_id: str,
    message: Message,
    headers: tuple[tuple[str, bytes], ...],
) -> Event:
    """`Event(...)` for the consumer's per-record loop, at less than half the cost.

    A frozen dataclass's generated __init__ sets each field through
    object.__setattr__; filling the instance dict at once saves ~0.5 us a record,
    5 % of the tick ingest's whole budget at 100k records/s. Event has no
    __post_init__, so the result is the same object.
    """
    event: Event = _new_object(Event)
    _set_attribute(
        event,
        "__dict__",
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "event_id": event_id,
            "message": message,
            "headers": headers,
        },
    )
    return event


def _client_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "logger": CLIENT_LOG,
        "error_cb": _log_client_error,
    }


def admin_client(bootstrap: str) -> AdminClient:
    """An admin client whose librdkafka lines go to the log, not to stderr."""
    return AdminClient(_client_config(bootstrap, "cift-admin"))


def _log_client_error(error: KafkaError) -> None:
    # Transport errors are retried by librdkafka itself; they are worth a warning.
    CLIENT_LOG.warning("kafka client error: %s", error)


class Delivered(NamedTuple):
    """Where the broker stored an acknowledged record."""

    topic: str
    partition: int
    offset: int


def _settle(
    future: asyncio.Future[Delivered], error: KafkaError | None, delivered: Delivered
) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(delivered)
    else:
        future.set_exception(KafkaException(error))


class EventProducer:
    """Publishes protobuf events; one per process, shared by every publisher.

    `publish(wait=True)` and `publish_raw` resolve when the broker acknowledged
    (acks=all); `publish(wait=False)` and `send` only enqueue (a failed delivery is
    logged), and `flush()` waits for everything enqueued so far.

    Records handed to librdkafka and delivery reports served are counted (each count
    has one writer: the event loop's thread and the poller thread), so `flush()` is
    woken by the report that brings the two level. librdkafka's own flush, called on a
    thread beside the poller, only notices every 10 ms (its poll slice), which was most
    of a lone batch's round trip to the broker.
    """

    def __init__(self, bootstrap: str, service: str, *, linger_ms: int = 2) -> None:
        self.service = service
        config = _client_config(bootstrap, f"cift-{service}")
        config.update(
            {
                "linger.ms": linger_ms,
                "acks": "all",
                "enable.idempotence": False,
                "partitioner": "murmur2_random",
                "batch.num.messages": 10_000,
                # A record the broker has not taken by then fails (and is logged or
                # raised to its waiter), so a flush at drain cannot hang for minutes.
                "message.timeout.ms": 30_000,
                "queue.buffering.max.messages": 500_000,
                "on_delivery": self._on_fire_and_forget,
            }
        )
        self._producer = confluent_kafka.Producer(config)
        self._counters: dict[str, Any] = {}
        self._poller: threading.Thread | None = None
        self._running = False
        self._enqueued = 0  # written on the event loop's thread only
        self._reported = 0  # written on the thread that serves delivery reports only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Event | None = None  # while a flush waits
        self._flushing = 0

    async def start(self) -> None:
        """Check the broker answers, then serve delivery reports on a thread."""
        await asyncio.to_thread(self._producer.list_topics, None, CONNECT_TIMEOUT_S)
        if self._poller is None:
            self._loop = asyncio.get_running_loop()
            self._running = True
            self._poller = threading.Thread(
                target=self._serve_reports, name=f"kafka-producer-{self.service}", daemon=True
            )
            self._poller.start()

    def _serve_reports(self) -> None:
        while self._running:
            self._producer.poll(POLL_TIMEOUT_S)

    async def stop(self) -> None:
        await self.flush()
        self._running = False
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None

    def _report_served(self) -> None:
        """Count one delivery report (good or failed); wake a flush once all are in."""
        self._reported += 1
        drained, loop = self._drained, self._loop
        if drained is not None and loop is not None and self._reported >= self._enqueued:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(drained.set)

    def _on_fire_and_forget(self, error: KafkaError | None, record: Any) -> None:
        self._report_served()
        if error is not None:
            log.error("kafka delivery failed", extra={"topic": record.topic(), "error": str(error)})

    def _count(self, topic: str, records: int = 1) -> None:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = KAFKA_EVENTS.labels(self.service, topic, "out")
        counter.inc(records)

    async def _produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Headers,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    ) -> None:
        client_headers = cast(_ClientHeaders, headers)
        while True:
            try:
                if on_delivery is None:
                    self._producer.produce(topic, value, key, headers=client_headers)
                else:
                    self._producer.produce(
                        topic, value, key, on_delivery=on_delivery, headers=client_headers
                    )
                return
            except BufferError:
                # The local queue is full: the broker is behind; let it drain.
                await asyncio.sleep(0.005)

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
        value = message.SerializeToString()
        if wait:
            await self._acknowledged(topic, key, value, headers)
        else:
            await self._produce(topic, key.encode(), value, headers)
            self._enqueued += 1
            self._count(topic)

    def _delivery_future(self) -> tuple[asyncio.Future[Delivered], Callable[[Any, Any], None]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivered] = loop.create_future()

        def report(error: KafkaError | None, record: Any) -> None:
            self._report_served()
            if not loop.is_closed():
                delivered = Delivered(record.topic(), record.partition(), record.offset())
                loop.call_soon_threadsafe(_settle, future, error, delivered)

        return future, report

    async def _acknowledged(self, topic: str, key: str, value: bytes, headers: Headers) -> None:
        future, report = self._delivery_future()
        await self._produce(topic, key.encode(), value, headers, report)
        self._enqueued += 1
        self._count(topic)
        await future

    async def cluster_id(self, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
        """The id of the cluster the producer reaches now (None if the broker gives none).

        A different id than before means another store: what the old one acknowledged
        is not there (the embedded broker gets a new id at every start).
        """
        metadata = await asyncio.to_thread(self._producer.list_topics, None, timeout_s)
        cluster: str | None = metadata.cluster_id
        return cluster

    async def publish_raw(
        self, topic: str, key: str, value: bytes, headers: Headers
    ) -> asyncio.Future[Delivered]:
        """Send a pre-encoded record (the outbox relay); returns the delivery future."""
        future, report = self._delivery_future()
        await self._produce(topic, key.encode(), value, headers, report)
        self._enqueued += 1
        self._count(topic)
        return future

    async def send(self, topic: str, records: Iterable[tuple[str | bytes, bytes, Headers]]) -> int:
        """Enqueue pre-encoded (key, value, headers) records without waiting; returns the count.

        The high-rate path (market data ticks): no future per record; a failed
        delivery is logged. Call `flush()` to wait for the broker.
        """
        produce = self._producer.produce
        sent = 0
        for key, value, headers in records:
            try:
                produce(topic, value, key, headers=cast(_ClientHeaders, headers))
            except BufferError:
                await self._produce(
                    topic, key.encode() if isinstance(key, str) else key, value, headers
                )
            sent += 1
        self._enqueued += sent
        self._count(topic, sent)
        return sent

    async def flush(self) -> None:
        """Wait until every record enqueued so far was acknowledged or failed.

        As librdkafka's flush, it returns at a moment when nothing is in flight, so
        records enqueued meanwhile are waited for too. A record the broker never takes
        fails after message.timeout.ms, which bounds the wait.
        """
        if self._poller is None:  # nobody serves reports: librdkafka's flush does
            while await asyncio.to_thread(self._producer.flush, 1.0):
                log.warning("kafka producer still has records in flight; waiting")
            return
        if self._reported >= self._enqueued:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        drained = self._drained
        self._flushing += 1
        waited_s = 0.0
        try:
            while self._reported < self._enqueued:
                drained.clear()
                if self._reported >= self._enqueued:
                    break
                try:
                    async with asyncio.timeout(FLUSH_RECHECK_S):
                        await drained.wait()
                except TimeoutError:
                    waited_s += FLUSH_RECHECK_S
                    if waited_s >= 1.0:
                        log.warning("kafka producer still has records in flight; waiting")
                        waited_s = 0.0
        finally:
            self._flushing -= 1
            if not self._flushing:
                self._drained = None


EventHandler = Callable[[list[Event]], Awaitable[None]]


class Records(NamedTuple):
    """One fetch's records, undecoded, as parallel lists (see `EventConsumer.run_records`)."""

    topic: str
    partitions: list[int]
    values: list[bytes]


RecordsHandler = Callable[[Records], Awaitable[None]]


@dataclass
class _Batch:
    """Decoded events (or raw records), and the next offset per partition once handled."""

    events: list[Event]
    ends: dict[tuple[str, int], int]
    records: Records | None = None


STATS_INTERVAL_MS = 5_000


def consumer_lags(stats_json: str) -> list[tuple[str, int, int]]:
    """(topic, partition, lag) of every partition librdkafka's statistics know a lag for.

    librdkafka reports -1 for a partition this member does not consume or whose
    positions are not yet known, and an internal partition -1; both are left out.
    """
    try:
        stats = json.loads(stats_json)
    except ValueError:
        return []
    lags: list[tuple[str, int, int]] = []
    for topic, topic_stats in stats.get("topics", {}).items():
        for partition_text, partition_stats in topic_stats.get("partitions", {}).items():
            partition = int(partition_text)
            lag = partition_stats.get("consumer_lag", -1)
            if partition >= 0 and isinstance(lag, int) and lag >= 0:
                lags.append((topic, partition, lag))
    return lags


class EventConsumer:
    """A consumer-group member that hands decoded batches to a handler, then commits.

    Offsets are committed only after the handler returns, so a crash replays the
    batch; handlers deduplicate by `Event.event_id` (see `db.claim_event`). The
    consumer's thread fetches and decodes the next batch while the handler works on
    the current one; that batch's offsets are committed once its handler returned.
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
        session_timeout_ms: int = 10_000,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.service = service
        self.group = group
        self.topics = list(topics)
        self.max_batch = max_batch
        self.from_beginning = from_beginning
        config = _client_config(bootstrap, f"cift-{service}-{group}")
        config.update(
            {
                "group.id": group,
                # The broker holds a new member's join for about half the session
                # timeout, and a restarted member's for about two sessions (the dead
                # one must expire first): librdkafka's 45 s default would mean a 23 s
                # start and a 90 s recovery.
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(session_timeout_ms // 3, 100),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "on_commit": self._on_commit,
                # Every few seconds librdkafka reports each partition's lag (stats_cb).
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "stats_cb": self._on_stats,
            }
        )
        self._config = config
        self._consumer: confluent_kafka.Consumer | None = None
        # Every call on the librdkafka handle runs on this one thread, in order.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{group}")
        self._stopping = asyncio.Event()
        # run() may be spawned in a service's setup, before the runtime starts the
        # consumer; it waits for start() instead of polling an unstarted client.
        self._started = asyncio.Event()
        self._running = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = False
        self._assigned = threading.Event()
        self._assignment: set[tuple[str, int]] = set()
        self._early: list[Any] = []
        # Next offset to commit per partition: handled, not yet committed / all handled.
        self._lock = threading.Lock()
        self._to_commit: dict[tuple[str, int], int] = {}
        self._handled: dict[tuple[str, int], int] = {}
        self._counters: dict[str, Any] = {}

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _on_stats(self, stats_json: str) -> None:
        """On the consumer thread: export each assigned partition's lag."""
        for topic, partition, lag in consumer_lags(stats_json):
            KAFKA_CONSUMER_LAG.labels(self.service, self.group, topic, str(partition)).set(lag)

    def holds(self, topic: str, partition: int) -> bool:
        """Whether this member is assigned the partition now (it changes on rebalances)."""
        with self._lock:
            return (topic, partition) in self._assignment

    async def start(self) -> None:
        """Join the group and wait until this member holds its partitions, positioned.

        Positions are resolved before start returns, so with from_beginning=False
        every record published after start() is seen.
        """
        if self._started.is_set():
            return
        await self._call(self._open)
        try:
            await self._call(self._join, JOIN_TIMEOUT_S)
        except BaseException:
            await self._call(self._close)
            raise
        self._started.set()

    def _open(self) -> None:
        if self._consumer is None:
            self._consumer = confluent_kafka.Consumer(self._config)
            self._consumer.subscribe(
                self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke
            )

    def _join(self, timeout_s: float) -> None:
        assert self._consumer is not None
        waited = 0.0
        while not self._assigned.is_set():
            if waited >= timeout_s:
                raise TimeoutError(f"Kafka group {self.group} did not assign partitions")
            # Serves the group join; records that arrive meanwhile are kept for run().
            self._early.extend(self._consumer.consume(self.max_batch, 0.1))
            waited += 0.1

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Resolve where each partition starts now (committed offset, else the
        # earliest or the current end), so records published after the assignment
        # are never skipped by a lazy "latest" reset.
        try:
            committed = consumer.committed(partitions, CONNECT_TIMEOUT_S) if partitions else []
            for partition in committed:
                if partition.offset < 0:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(partition.topic, partition.partition),
                        CONNECT_TIMEOUT_S,
                    )
                    partition.offset = low if self.from_beginning else high
            consumer.assign(committed)
        except KafkaException as exc:
            log.warning(
                "could not resolve start offsets; using the reset policy",
                extra={"group": self.group, "error": str(exc)},
            )
            consumer.assign(partitions)
        with self._lock:
            self._assignment = {(p.topic, p.partition) for p in partitions}
        self._assigned.set()

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Hand the handled offsets of the leaving partitions over before another
        # member takes them; what is not committed is replayed there.
        revoked = {(p.topic, p.partition) for p in partitions}
        with self._lock:
            self._assignment -= revoked
            offsets = [
                TopicPartition(topic, partition, offset)
                for (topic, partition), offset in self._handled.items()
                if (topic, partition) in revoked
            ]
            for key in revoked:
                self._handled.pop(key, None)
                self._to_commit.pop(key, None)
        self._commit_now(consumer, offsets, "offset commit on revoke failed")
        consumer.unassign()

    def _commit_now(
        self, consumer: confluent_kafka.Consumer, offsets: list[TopicPartition], failure: str
    ) -> None:
        """Commit synchronously; a failure is logged, since redelivery is safe (idempotent handlers)."""
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning(failure, extra={"group": self.group, "error": str(exc)})

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            log.warning("offset commit failed", extra={"group": self.group, "error": str(error)})

    def _take_commit(self) -> list[TopicPartition]:
        with self._lock:
            pending, self._to_commit = self._to_commit, {}
        return [TopicPartition(t, p, o) for (t, p), o in pending.items()]

    def _next_batch(self, decode: Callable[[list[Any]], _Batch]) -> _Batch:
        """On the consumer thread: commit what was handled, then fetch and decode a batch."""
        consumer = self._consumer
        assert consumer is not None
        offsets = self._take_commit()
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=True)
        if self._early:
            records, self._early = self._early, []
        else:
            # consume(n, t) waits for all n records or the timeout; poll returns with
            # the first record, then consume(n, 0) takes whatever is already fetched.
            records = consumer.consume(self.max_batch, 0)
            if not records:
                first = consumer.poll(POLL_TIMEOUT_S)
                if first is None:
                    return _Batch([], {})
                records = [first, *consumer.consume(self.max_batch - 1, 0)]
        return decode(records)

    def _decode(self, records: list[Any]) -> _Batch:
        events: list[Event] = []
        append = events.append
        # Next offset per partition, undecodable records included (they are skipped).
        ends: dict[tuple[str, int], int] = {}
        # The newest producer timestamp (ms) per topic in this batch.
        produced_ms: dict[str, int] = {}
        classes = _message_classes
        for record in records:
            error = record.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning(
                        "kafka fetch error", extra={"group": self.group, "error": str(error)}
                    )
                continue
            topic = record.topic()
            partition = record.partition()
            offset = record.offset()
            ends[(topic, partition)] = offset + 1
            produced_ms[topic] = record.timestamp()[1]
            headers = tuple(record.headers() or ())
            schema = event_id = b""
            for name, value in headers:
                if name == SCHEMA_HEADER:
                    schema = value
                elif name == EVENT_ID_HEADER:
                    event_id = value
            try:
                message_class = classes.get(schema) or _message_class(schema)
                message = message_class.FromString(record.value() or b"")
            except DecodeError as exc:
                log.error(
                    "skipping undecodable record",
                    extra={"topic": topic, "offset": offset, "error": str(exc)},
                )
                continue
            key = record.key()
            append(
                _event(
                    topic,
                    partition,
                    offset,
                    key.decode() if key else "",
                    event_id.decode() if event_id else f"{topic}:{partition}:{offset}",
                    message,
                    headers,
                )
            )
        now_ms = time.time() * 1000
        for topic, timestamp_ms in produced_ms.items():
            if timestamp_ms > 0:
                delay_s = max(now_ms - timestamp_ms, 0.0) / 1000
                KAFKA_CONSUME_DELAY.labels(self.service, topic).observe(delay_s)
        return _Batch(events, ends)

    def _raw(self, records: list[Any]) -> _Batch:
        """The values and partitions only: no header, key or message object per record."""
        partitions: list[int] = []
        values: list[bytes] = []
        ends: dict[tuple[str, int], int] = {}
        topic = ""
        newest_ms = 0
        for record in records:
            if record.error() is not None:
                if record.error().code() != KafkaError._PARTITION_EOF:
                    log.warning(
                        "kafka fetch error",
                        extra={"group": self.group, "error": str(record.error())},
                    )
                continue
            partition = record.partition()
            topic = record.topic()
            ends[(topic, partition)] = record.offset() + 1
            partitions.append(partition)
            values.append(record.value() or b"")
        if records:
            newest_ms = records[-1].timestamp()[1]
        if newest_ms > 0 and topic:
            delay_s = max(time.time() * 1000 - newest_ms, 0.0) / 1000
            KAFKA_CONSUME_DELAY.labels(self.service, topic).observe(delay_s)
        return _Batch([], ends, Records(topic, partitions, values))

    def _mark_handled(self, ends: dict[tuple[str, int], int]) -> None:
        with self._lock:
            for key, end in ends.items():
                if key in self._assignment and end > self._handled.get(key, -1):
                    self._handled[key] = self._to_commit[key] = end

    async def stop(self) -> None:
        """Stop run(), commit what its handler finished, leave the group, close."""
        self._stopping.set()
        if self._running.is_set():
            # run() notices within one fetch; a handler still working finishes first.
            try:
                async with asyncio.timeout(30.0):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("consumer run loop did not stop in time", extra={"group": self.group})
        if not self._stopped:
            self._stopped = True
            await self._call(self._close)
            self._thread.shutdown(wait=False)

    def _close(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        with self._lock:
            offsets = [
                TopicPartition(t, p, o)
                for (t, p), o in self._handled.items()
                if (t, p) in self._assignment
            ]
            self._to_commit.clear()
        self._commit_now(consumer, offsets, "final offset commit failed")
        consumer.close()
        self._consumer = None

    async def run(self, handler: EventHandler) -> None:
        """Consume until stopped. A handler error is logged and the batch retried.

        May be spawned before `start()` (services wire consumers in setup and the
        runtime starts them afterwards); it waits for the group join.
        """
        tracer = trace.get_tracer("cift.kafka")

        async def dispatch(batch: _Batch) -> None:
            await self._dispatch(tracer, handler, batch)

        await self._run(self._decode, dispatch)

    async def run_records(self, handler: RecordsHandler) -> None:
        """`run` for a topic of one known schema whose handler decodes values itself.

        The handler gets each fetch's values and partitions undecoded: no header is
        parsed and no message, key or Event object is made per record, which is most
        of the per-record cost of `run` at 100k records/s (the tick ingest). So there
        is no event id or trace context either: the handler deduplicates by its own
        content (the ingest by tick sequence). Commits and retries are as in `run`.
        """
        if len(self.topics) != 1:
            raise ValueError("run_records consumes exactly one topic")
        tracer = trace.get_tracer("cift.kafka")

        async def dispatch(batch: _Batch) -> None:
            records = batch.records
            assert records is not None
            if records.values:
                with tracer.start_as_current_span(
                    f"consume {records.topic}",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={"messaging.batch.message_count": len(records.values)},
                ):
                    await self._handle_with_retry(handler, records)
            self._mark_handled(batch.ends)
            if records.values:
                self._count_in(records.topic, len(records.values))

        await self._run(self._raw, dispatch)

    async def _run(
        self,
        decode: Callable[[list[Any]], _Batch],
        dispatch: Callable[[_Batch], Awaitable[None]],
    ) -> None:
        await self._started.wait()
        if self._stopping.is_set():
            return
        self._running.set()
        self._idle.clear()
        try:
            pending = asyncio.ensure_future(self._call(self._next_batch, decode))
            try:
                while not self._stopping.is_set():
                    batch = await pending
                    if self._stopping.is_set():
                        break
                    # Fetch and decode the next batch while the handler works.
                    pending = asyncio.ensure_future(self._call(self._next_batch, decode))
                    if batch.ends:
                        await dispatch(batch)
            finally:
                # The prefetched batch is dropped uncommitted; it is fetched again
                # by whoever holds its partitions next.
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        finally:
            self._running.clear()
            self._idle.set()

    async def _dispatch(self, tracer: trace.Tracer, handler: EventHandler, batch: _Batch) -> None:
        events = batch.events
        if events:
            # The first event's trace context parents the batch's span.
            token = otel_context.attach(extract_headers(events[0].headers))
            try:
                with tracer.start_as_current_span(
                    f"consume {events[0].topic}",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={"messaging.batch.message_count": len(events)},
                ):
                    await self._handle_with_retry(handler, events)
            finally:
                otel_context.detach(token)
        self._mark_handled(batch.ends)
        per_topic: dict[str, int] = {}
        for topic, _ in batch.ends:
            per_topic[topic] = 0
        for event in events:
            per_topic[event.topic] += 1
        for topic, count in per_topic.items():
            self._count_in(topic, count)

    def _count_in(self, topic: str, count: int) -> None:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = KAFKA_EVENTS.labels(self.service, topic, "in")
        counter.inc(count)

    async def _handle_with_retry(
        self, handler: Callable[[Any], Awaitable[None]], batch: Any
    ) -> None:
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


async def topic_names(bootstrap: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """The broker's topic names: one metadata round trip, which also proves it speaks Kafka.

    Raises KafkaException when no answer came within `timeout_s`. The client's logs
    are never served (nothing polls it), so a broker that is down prints nothing.
    """

    def fetch() -> list[str]:
        admin = admin_client(bootstrap)
        return list(admin.list_topics(timeout=timeout_s).topics)

    return await asyncio.to_thread(fetch)


async def ensure_topics(
    bootstrap: str, topics: Sequence[str] = TOPICS, *, partitions: int = 3
) -> None:
    """Create missing topics (idempotent); replication factor 1.

    Raises KafkaException when the broker does not answer within CONNECT_TIMEOUT_S or
    refuses a topic for a reason other than that it exists (the reason names the topic).
    """

    def create() -> None:
        # Made, used and dropped on the worker thread: no librdkafka call on the loop.
        admin = admin_client(bootstrap)
        existing = set(admin.list_topics(timeout=CONNECT_TIMEOUT_S).topics)
        missing = [NewTopic(name, partitions, 1) for name in topics if name not in existing]
        if not missing:
            return
        requests = admin.create_topics(missing, request_timeout=CONNECT_TIMEOUT_S)
        for name, created in requests.items():
            try:
                # librdkafka fails the request at its own timeout, which ends first.
                created.result(CONNECT_TIMEOUT_S + 1.0)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaException(
                        KafkaError(error.code(), f"topic {name}: {error.str()}")
                    ) from None
                log.debug("topic %s appeared concurrently", name)

    await asyncio.to_thread(create)
