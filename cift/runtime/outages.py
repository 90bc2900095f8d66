"""Which failures mean "a dependency is away for a moment", so the caller should retry.

While PostgreSQL, Redis or the broker restarts, a call that needs it fails with the
client library's own connection error. That is no bug in the service and no bad
request: the caller gets UNAVAILABLE with retry advice (HTTP 503 and Retry-After at
the gateway), never INTERNAL (a 500 that says "report this").
"""

from __future__ import annotations

import errno

import asyncpg
import redis.exceptions
from confluent_kafka import KafkaException

# Seconds a client should wait before retrying a call that met an outage.
RETRY_AFTER_S = 1

_OUTAGES: tuple[type[BaseException], ...] = (
    # Refused, reset or timed-out connections, whoever the client was.
    ConnectionError,
    TimeoutError,
    # The server restarting, shutting down, or not accepting connections yet.
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # asyncpg's protocol state on a pooled connection the server dropped mid-query
    # ("cannot switch to state 12; another operation is in progress"), seen only then.
    asyncpg.InternalClientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    KafkaException,
)


_CONNECT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT}
)


def _is_one(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGES):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed": a pooled connection the restarted server dropped.
        return "connection is closed" in str(exc)
    if isinstance(exc, OSError):
        # asyncio's "Multiple exceptions: Connect call failed ..." carries no errno.
        return exc.errno in _CONNECT_ERRNOS or "Connect call failed" in str(exc)
    return False


def is_outage(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, is a dependency being unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _is_one(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
