"""The asyncpg pool and forward-only SQL migrations, one schema per service.

A service only ever touches its own schema: the pool pins `search_path` to it.
Migrations are `NNN_name.sql` files applied in order, each in its own
transaction, under an advisory lock so concurrent starts (several replicas, the
migration Job) apply each file exactly once. An applied file must never change:
its checksum is recorded and a mismatch stops the service.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from cift.runtime.errors import FailedPrecondition

log = logging.getLogger(__name__)

# Tables the shared runtime keeps in every service schema (outbox relay and
# idempotent consumers), created before the service's own migrations.
RUNTIME_MIGRATION = """
CREATE TABLE IF NOT EXISTS outbox (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT        NOT NULL UNIQUE,
    topic       TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    schema_name TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    headers     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
-- Relayed rows stay for a while (cift.runtime.outbox.RETENTION_S) so that what a broker
-- acknowledged and then lost (the embedded one keeps messages in memory) is relayed again.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS published_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
-- The cluster id of the broker that acknowledged the row: a relay that meets another
-- id (a restarted in-memory broker) relays again the rows that store never saw.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS published_to TEXT;
"""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | resources.abc.Traversable) -> list[Migration]:
    """Read `NNN_name.sql` files in version order."""
    files = sorted(
        (entry for entry in directory.iterdir() if entry.name.endswith(".sql")),
        key=lambda e: e.name,
    )
    return [
        Migration(version=entry.name.removesuffix(".sql"), sql=entry.read_text()) for entry in files
    ]


def _quote_ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid schema name {name!r}")
    return f'"{name}"'


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (a round trip on every release).

    asyncpg still rolls back a transaction left open and drops client listeners
    before calling this. Services never change session state outside a
    transaction (no SET, session advisory locks or cursors; search_path is a
    connection start-up setting, and LISTEN is undone by `remove_listener`), so
    `RESET ALL; UNLISTEN *; ...` would cost a round trip per acquire for nothing.
    """


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 8
) -> asyncpg.Pool:
    """A pool whose connections see only `schema` (plus pg_catalog)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"cift-{schema}"},
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply pending migrations to `schema`; returns the versions applied now."""
    quoted = _quote_ident(schema)
    applied_now: list[str] = []
    async with conn.transaction():
        # One lock per schema serializes concurrent migrators; it ends with the transaction.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"cift-migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(f"SET LOCAL search_path TO {quoted}")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version TEXT PRIMARY KEY,
                   checksum TEXT NOT NULL,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
        )
        await conn.execute(RUNTIME_MIGRATION)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        known = {row["version"]: row["checksum"] for row in rows}
        for migration in migrations:
            recorded = known.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise FailedPrecondition(
                        f"migration {schema}/{migration.version} changed after it was applied; "
                        "migrations are forward-only: add a new file instead"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
            applied_now.append(migration.version)
    if applied_now:
        log.info("applied migrations", extra={"schema": schema, "versions": applied_now})
    return applied_now


async def migrate_dsn(dsn: str, schema: str, migrations: list[Migration]) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema, migrations)
    finally:
        await conn.close()


async def claim_event(conn: asyncpg.Connection, consumer: str, event_id: str) -> bool:
    """Record that `consumer` processed `event_id`; False if it already had.

    Call inside the transaction that applies the event's effect, so the effect
    and the record commit together and a redelivered event changes nothing.
    """
    status = await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        consumer,
        event_id,
    )
    return bool(status == "INSERT 0 1")
