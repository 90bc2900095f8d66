"""Does a component answer? One probe per kind of server, plus a patient retry.

Probes are what "up" means for the launcher, `cift status` and the tests alike: a
PostgreSQL that accepts a query, a Redis that answers PING, a broker that returns
metadata, a gRPC health check that says SERVING, an HTTP endpoint that returns 200.
A probe raises `ProbeFailed` with a short reason; it never hangs past its timeout.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import grpc
import redis.asyncio as aioredis
from confluent_kafka import KafkaException
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cift.runtime import kafka
from cift.stack.errors import StackError

T = TypeVar("T")

PROBE_TIMEOUT_S = 2.0
KAFKA_DEFAULT_PORT = 9092


class ProbeFailed(Exception):
    """The component did not answer as expected; the message says how."""


def _reason(exc: BaseException) -> str:
    """A short, uniform reason: every kind of client words "nothing listens" differently."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip() or type(exc).__name__
    if "Connection refused" in text or "Connect call failed" in text:
        return "connection refused"
    return text.splitlines()[0]


async def probe_postgres(url: str, *, database_may_be_missing: bool = False) -> None:
    """Pass when the server runs a query; optionally also when only `url`'s database is missing."""
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_S)
    except asyncpg.InvalidCatalogNameError as exc:
        if database_may_be_missing:
            return
        raise ProbeFailed(_reason(exc)) from None
    except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise ProbeFailed(_reason(exc)) from None
    try:
        await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
    except (asyncpg.PostgresError, TimeoutError) as exc:
        raise ProbeFailed(_reason(exc)) from None
    finally:
        await conn.close()


async def probe_redis(url: str) -> None:
    client = aioredis.from_url(url, socket_timeout=PROBE_TIMEOUT_S)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        raise ProbeFailed(_reason(exc)) from None
    finally:
        await client.aclose()


def kafka_servers(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each entry of a bootstrap list ("h1:9092,h2", "PLAINTEXT://h", "[::1]:9092")."""
    servers = []
    for entry in bootstrap.split(","):
        address = entry.strip().rpartition("://")[2]
        host, colon, port = address.rpartition(":")
        if colon and port.isdigit() and (":" not in host or host.startswith("[")):
            servers.append((host.strip("[]"), int(port)))
        else:
            servers.append((address.strip("[]"), KAFKA_DEFAULT_PORT))
    return servers


async def probe_kafka(bootstrap: str) -> list[str]:
    """The broker's topic names (a metadata round trip proves it serves the protocol)."""
    # librdkafka retries a refused connection until the call's timeout runs out: a plain
    # connect first makes "nothing listens" fail at once, as it does for the other probes
    # (and lets the launcher's readiness wait, not the client, pace the retries).
    reached = await asyncio.gather(
        *(probe_tcp(host, port) for host, port in kafka_servers(bootstrap)),
        return_exceptions=True,
    )
    failures = [outcome for outcome in reached if outcome is not None]
    if len(failures) == len(reached):
        raise ProbeFailed(_reason(failures[0]))
    # Only this call is bounded; the client's request timeouts keep librdkafka's defaults:
    # Tansu holds a group join for about half the session timeout, and shorter request
    # timeouts never completed one.
    try:
        return await kafka.topic_names(bootstrap, timeout_s=PROBE_TIMEOUT_S)
    except KafkaException as exc:
        raise ProbeFailed(
            f"no Kafka metadata within {PROBE_TIMEOUT_S:g} s: {exc.args[0].str()}"
        ) from None


async def probe_grpc_health(address: str, service: str = "") -> None:
    """Pass only when grpc.health.v1 Check reports SERVING for `service`."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=PROBE_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if "Connection refused" in details:
                raise ProbeFailed("connection refused") from None
            raise ProbeFailed(f"{exc.code().name}: {details}") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        raise ProbeFailed(status)


async def probe_http(url: str) -> str:
    """The body of a 200 answer from `url`."""

    def fetch() -> str:
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                body: bytes = response.read()
                return body.decode(errors="replace")
        except urllib.error.HTTPError as exc:
            raise ProbeFailed(f"HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise ProbeFailed(_reason(exc)) from None

    return await asyncio.to_thread(fetch)


async def probe_tcp(host: str, port: int) -> None:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise ProbeFailed(_reason(exc)) from None
    writer.close()
    await writer.wait_closed()


async def wait_until_answers(
    what: str,
    probe: Callable[[], Awaitable[T]],
    timeout_s: float,
    still_running: Callable[[], bool] = lambda: True,
) -> T:
    """Retry `probe` until it passes; give up after `timeout_s` or when the process died.

    Raises a `StackError` naming `what` and the last reason it gave.
    """
    deadline = time.monotonic() + timeout_s
    delay_s = 0.05
    while True:
        try:
            return await probe()
        except ProbeFailed as exc:
            reason = str(exc)
        if not still_running():
            raise StackError(f"{what} exited before it answered (last probe: {reason})")
        if time.monotonic() + delay_s > deadline:
            raise StackError(f"{what} did not answer within {timeout_s:g} s: {reason}")
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 1.5, 0.5)
