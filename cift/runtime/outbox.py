"""The transactional outbox: events written with the change, published after commit.

`enqueue` runs inside the transaction that changes the database, so an event
exists if and only if its change committed. The relay publishes rows in id order
and marks them published only after the broker acknowledged them: a crash in between
publishes a row twice, never zero times, and consumers deduplicate on the event id.

A broker may also lose what it acknowledged: the embedded one keeps messages in
memory, so a restart forgets them. Relayed rows are therefore kept for
`RETENTION_S`, with the cluster id of the broker that acknowledged them. Every
`CHECK_BROKER_EVERY_S`, and at start, the relay asks the broker for its cluster id;
the embedded broker gets a new one at every start, and rows relayed within the
window to another cluster are relayed again, even when nothing new is published
(so at the end of a burst, too). A broker that keeps its id but hands out an offset
at or below one it already acknowledged on the same partition (it started over)
gets every row of the window again. The relay rides out database and broker
outages: it retries with backoff and never gives up while the service runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence

import asyncpg
from confluent_kafka import KafkaException
from google.protobuf.message import Message

from cift.runtime.kafka import Delivered, EventProducer, encode_headers, new_event_id

log = logging.getLogger(__name__)

# Each schema's relay listens on a channel of its own. The services share one
# database, so a single channel woke every service's relay, each for an empty
# transaction, at every commit of every other service.
NOTIFY_PREFIX = "cift_outbox_"
# The SQL that wakes the relay of the connection's schema (the pool's search_path).
NOTIFY_SQL = f"pg_notify('{NOTIFY_PREFIX}' || current_schema(), '')"
# The one INSERT into a service's outbox table; services that queue events inside a
# statement of their own (execution's submit) complete it with their rows.
OUTBOX_INSERT = "INSERT INTO outbox (event_id, topic, key, schema_name, payload, headers)"


async def enqueue(
    conn: asyncpg.Connection, topic: str, key: str, message: Message, *, event_id: str | None = None
) -> str:
    """Add an event to the outbox of the connection's schema; returns its event id."""
    event_id = event_id or new_event_id()
    await enqueue_many(conn, topic, [(key, message, event_id)])
    return event_id


async def enqueue_many(
    conn: asyncpg.Connection, topic: str, events: Sequence[tuple[str, Message, str]]
) -> None:
    """Add (key, message, event id) events to the outbox in one round trip, in order.

    One statement inserts them all and wakes the relay: a batch writer (the tick
    ingest closes several bars per transaction) pays one round trip, not two per event.
    """
    if not events:
        return
    keys: list[str] = []
    schemas: list[str] = []
    payloads: list[bytes] = []
    ids: list[str] = []
    headers: list[str] = []
    for key, message, event_id in events:
        keys.append(key)
        schemas.append(message.DESCRIPTOR.full_name)
        payloads.append(message.SerializeToString())
        ids.append(event_id)
        encoded = encode_headers(message, event_id)
        headers.append(json.dumps({name: value.decode() for name, value in encoded}))
    await conn.execute(
        f"""WITH added AS (
               {OUTBOX_INSERT}
               SELECT e.event_id, $2, e.key, e.schema_name, e.payload, e.headers::jsonb
               FROM unnest($1::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
                    WITH ORDINALITY AS e(event_id, key, schema_name, payload, headers, n)
               ORDER BY e.n
               RETURNING 1
           )
           SELECT {NOTIFY_SQL} WHERE EXISTS (SELECT FROM added)""",
        ids,
        topic,
        keys,
        schemas,
        payloads,
        headers,
    )


# How long a relayed event stays re-relayable should the broker lose it.
RETENTION_S = 120.0
# How often rows relayed longer than RETENTION_S ago are deleted.
PURGE_EVERY_S = 30.0
_RETRY_FIRST_S = 0.2
# What a database or broker outage raises: retried with a warning, no traceback.
_OUTAGES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaException)
_RETRY_MAX_S = 5.0
# Least time from one relay pass's start to the next. Every commit that queues an
# event wakes the relay, and a pass costs four statements and a broker round trip
# however few rows it moves: under load, passes at most this often carry every
# commit of the interval together. After a quiet spell the next event goes at once.
PACE_S = 0.01
# How often an idle relay asks the broker whether it is still the store it published to.
CHECK_BROKER_EVERY_S = 2.0


class OutboxRelay:
    """Moves committed outbox rows to Kafka, in order, until stopped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: EventProducer,
        *,
        batch: int = 500,
        poll_s: float = 0.5,
        pace_s: float = PACE_S,
        retention_s: float = RETENTION_S,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.batch = batch
        self.poll_s = poll_s
        self.pace_s = pace_s
        self.retention_s = retention_s
        self._wake = asyncio.Event()
        # (topic, partition) → the last offset the broker acknowledged there.
        self._acknowledged: dict[tuple[str, int], int] = {}
        self._broker_lost_events = False
        self._purged_at = 0.0
        # The cluster id of the broker the relay publishes to (None: not asked yet, or a
        # broker that gives none); and when it was last asked.
        self._cluster: str | None = None
        self._checked_at = float("-inf")
        self._relayed_since_retry = False

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled, through database restarts and broker outages."""
        retry_s = _RETRY_FIRST_S
        while True:
            self._relayed_since_retry = False
            try:
                await self._relay_while_connected()
            except Exception as exc:
                if self._relayed_since_retry:
                    # Doubling is for one outage: a relay that worked again since meets
                    # the next one from the first step, not at the ceiling of the last.
                    retry_s = _RETRY_FIRST_S
                if isinstance(exc, _OUTAGES):
                    log.warning(
                        "outbox relay interrupted; retrying",
                        extra={"error": str(exc) or type(exc).__name__, "retry_in_s": retry_s},
                    )
                else:
                    # Anything else too (asyncpg's InternalClientError from a pooled
                    # connection a killed server left mid-operation, say): the relay is
                    # the only way committed events leave, and one that stopped would
                    # lose them silently.
                    log.exception("outbox relay failed; retrying", extra={"retry_in_s": retry_s})
            await self._back_off(retry_s)
            retry_s = min(retry_s * 2, _RETRY_MAX_S)

    async def _back_off(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _relay_while_connected(self) -> None:
        listener = await self.pool.acquire()
        channel = NOTIFY_PREFIX + str(await listener.fetchval("SELECT current_schema()"))
        try:
            await listener.add_listener(channel, self._on_notify)
            while not listener.is_closed():
                started = time.monotonic()
                # Cleared before the pass, not after: a commit notified while the pass
                # runs may have missed its read, and its wake-up must survive the pass.
                self._wake.clear()
                await self._requeue_what_the_broker_lost()
                published = await self.relay_once()
                await self._purge_when_due()
                self._relayed_since_retry = True
                if published < self.batch:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_s):
                            await self._wake.wait()
                    # Commits arriving in the rest of the pace share the next pass.
                    rest_s = self.pace_s - (time.monotonic() - started)
                    if rest_s > 0:
                        await asyncio.sleep(rest_s)
            raise asyncpg.InterfaceError("the outbox listener's connection closed")
        finally:
            # A connection a restarted server dropped cannot unlisten; the pool replaces it.
            with contextlib.suppress(Exception):
                await listener.remove_listener(channel, self._on_notify)
            with contextlib.suppress(Exception):
                await self.pool.release(listener)

    async def _requeue_what_the_broker_lost(self) -> None:
        """Queue again what a restarted broker no longer holds (see the module's docstring)."""
        now = time.monotonic()
        if self._broker_lost_events or now - self._checked_at >= CHECK_BROKER_EVERY_S:
            cluster = await self.producer.cluster_id()
            if cluster is not None and cluster != self._cluster:
                # At start too: a previous process may have published to an older store.
                await self.relay_again(not_on=cluster)
                self._broker_lost_events = False
                # The old store's offsets say nothing of the new one's, which starts at 0.
                self._acknowledged.clear()
            # Noted once the rows are queued: a failed statement is tried on the next pass.
            self._cluster, self._checked_at = cluster, now
        if self._broker_lost_events:
            await self.relay_again()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows it moved."""
        # Asked before publishing, so a row a broker acknowledged is never recorded under
        # a newer broker's id (a newer broker than recorded only means a needless resend).
        cluster = self._cluster
        async with self.pool.acquire() as conn, conn.transaction():
            # SKIP LOCKED lets several replicas relay without publishing a row twice
            # in the normal case, while id order keeps per-key order within a replica.
            rows = await conn.fetch(
                """SELECT id, topic, key, payload, headers FROM outbox
                   WHERE published_at IS NULL
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
            )
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers = [
                    (name, str(value).encode())
                    for name, value in json.loads(row["headers"]).items()
                ]
                futures.append(
                    await self.producer.publish_raw(
                        row["topic"], row["key"], row["payload"], headers
                    )
                )
            self._note_offsets(await asyncio.gather(*futures))
            await conn.execute(
                "UPDATE outbox SET published_at = now(), published_to = $2"
                " WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
                cluster,
            )
            return len(rows)

    def _note_offsets(self, deliveries: list[Delivered]) -> None:
        """Notice a broker that started over: offsets on a partition only ever grow."""
        for delivered in deliveries:
            where = (delivered.topic, delivered.partition)
            last = self._acknowledged.get(where)
            if last is not None and delivered.offset <= last:
                self._broker_lost_events = True
            self._acknowledged[where] = delivered.offset

    async def relay_again(self, *, not_on: str | None = None) -> int:
        """Queue every row relayed within the retention window for relaying once more;
        with `not_on`, only those another cluster than that one acknowledged.

        The flag is cleared only once the rows are queued: the database may fail this
        statement (a pooled connection to a server that restarted, say), and a flag
        cleared first would leave the lost events lost for good.
        """
        again = await self.pool.fetchval(
            """WITH again AS (
                   UPDATE outbox SET published_at = NULL
                   WHERE published_at > now() - make_interval(secs => $1)
                     AND ($2::text IS NULL OR published_to IS DISTINCT FROM $2)
                   RETURNING 1)
               SELECT count(*) FROM again""",
            self.retention_s,
            not_on,
        )
        if not_on is None:
            self._broker_lost_events = False
        if again:
            log.warning(
                "the broker lost acknowledged events (it restarted); relaying them again",
                extra={"events": again, "window_s": self.retention_s, "cluster": not_on},
            )
        return int(again)

    async def _purge_when_due(self) -> None:
        now = time.monotonic()
        if now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now
        await self.pool.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
            self.retention_s,
        )
