"""The transactional outbox: events written with the change, published after commit.

`enqueue` runs inside the transaction that changes the database, so an event
exists if and only if its change committed. The relay publishes rows in id order
and deletes them only after the broker acknowledged them: a crash in between
publishes a row twice, never zero times, and consumers deduplicate on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import asyncpg
from google.protobuf.message import Message

from cift.runtime.kafka import EventProducer, encode_headers, new_event_id

log = logging.getLogger(__name__)

# Each schema's relay listens on a channel of its own. The services share one
# database, so a single channel woke every service's relay, each for an empty
# transaction, at every commit of every other service.
NOTIFY_PREFIX = "cift_outbox_"
# The SQL that wakes the relay of the connection's schema (the pool's search_path).
NOTIFY_SQL = f"pg_notify('{NOTIFY_PREFIX}' || current_schema(), '')"


async def enqueue(
    conn: asyncpg.Connection, topic: str, key: str, message: Message, *, event_id: str | None = None
) -> str:
    """Add an event to the outbox of the connection's schema; returns its event id."""
    event_id = event_id or new_event_id()
    headers = {name: value.decode() for name, value in encode_headers(message, event_id)}
    await conn.execute(
        """INSERT INTO outbox (event_id, topic, key, schema_name, payload, headers)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
        event_id,
        topic,
        key,
        message.DESCRIPTOR.full_name,
        message.SerializeToString(),
        json.dumps(headers),
    )
    await conn.execute(f"SELECT {NOTIFY_SQL}")
    return event_id


class OutboxRelay:
    """Moves committed outbox rows to Kafka, in order, until stopped."""

    def __init__(
        self, pool: asyncpg.Pool, producer: EventProducer, *, batch: int = 500, poll_s: float = 0.5
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.batch = batch
        self.poll_s = poll_s
        self._wake = asyncio.Event()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        listener = await self.pool.acquire()
        channel = NOTIFY_PREFIX + str(await listener.fetchval("SELECT current_schema()"))
        await listener.add_listener(channel, self._on_notify)
        try:
            while True:
                published = await self.relay_once()
                if published < self.batch:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
        finally:
            await listener.remove_listener(channel, self._on_notify)
            await self.pool.release(listener)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows it moved."""
        async with self.pool.acquire() as conn, conn.transaction():
            # SKIP LOCKED lets several replicas relay without publishing a row twice
            # in the normal case, while id order keeps per-key order within a replica.
            rows = await conn.fetch(
                """SELECT id, topic, key, payload, headers FROM outbox
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
            await asyncio.gather(*futures)
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
            )
            return len(rows)
