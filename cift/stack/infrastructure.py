"""PostgreSQL, Redis and the broker: how the launcher knows each answers, and prepares it.

The same description serves a server the operator runs (probed, then prepared once)
and an embedded one the launcher runs (a supervised component whose preparation runs
after every start, because a restarted embedded broker has forgotten its topics).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cift.stack import kafka_broker, postgres
from cift.stack.components import INFRASTRUCTURE, Component
from cift.stack.errors import redact_url
from cift.stack.probes import probe_kafka, probe_postgres, probe_redis, wait_until_answers
from cift.stack.processes import Child


@dataclass(frozen=True)
class Server:
    """One infrastructure server: what to call it, how to probe it, how to prepare it."""

    what: str
    probe: Callable[[], Awaitable[object]]
    # Run once it answers: the database the services use, the topics of API.md.
    prepare: Callable[[], Awaitable[None]] | None = None


def servers(
    database_url: str, redis_url: str, bootstrap: str, partitions: int
) -> dict[str, Server]:
    """The three servers by piece name ("postgres", "redis", "kafka")."""
    return {
        "postgres": Server(
            f"PostgreSQL at {redact_url(database_url)}",
            # A configured server may not have the database yet; ensure_database makes it.
            lambda: probe_postgres(database_url, database_may_be_missing=True),
            lambda: postgres.ensure_database(database_url),
        ),
        "redis": Server(f"Redis at {redact_url(redis_url)}", lambda: probe_redis(redis_url)),
        "kafka": Server(
            f"Kafka at {bootstrap}",
            lambda: probe_kafka(bootstrap),
            lambda: kafka_broker.ensure_topics(bootstrap, partitions),
        ),
    }


def embedded(name: str, server: Server, launch: Callable[[], Child], timeout_s: float) -> Component:
    """An embedded server as a supervised component, prepared after every start."""
    return Component(
        name=name,
        kind=INFRASTRUCTURE,
        launch=launch,
        probe=server.probe,
        what=server.what,
        start_timeout_s=timeout_s,
        after_start=server.prepare,
    )


async def wait_and_prepare(server: Server, timeout_s: float) -> None:
    """Wait for a server someone else runs, then prepare it."""
    await wait_until_answers(server.what, server.probe, timeout_s)
    if server.prepare is not None:
        await server.prepare()
