"""A dependency that is away for a moment is UNAVAILABLE with retry advice, never INTERNAL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
import redis.exceptions

from cift.runtime.interceptors import PUBLIC, ServiceInterceptor
from cift.runtime.outages import is_outage


def test_database_redis_and_connection_failures_are_outages() -> None:
    assert is_outage(asyncpg.CannotConnectNowError("the database system is starting up"))
    assert is_outage(asyncpg.ConnectionDoesNotExistError("connection was closed"))
    assert is_outage(asyncpg.AdminShutdownError("terminating connection"))
    assert is_outage(asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"))
    assert is_outage(asyncpg.InternalClientError("cannot switch to state 12"))
    assert is_outage(redis.exceptions.ConnectionError("Error 111 connecting"))
    assert is_outage(ConnectionRefusedError(111, "Connection refused"))
    assert is_outage(OSError("Multiple exceptions: [Errno 111] Connect call failed"))


def test_an_error_raised_from_an_outage_is_one_too() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as exc:
            raise RuntimeError("the batch failed") from exc
    except RuntimeError as wrapped:
        assert is_outage(wrapped)


def test_bugs_are_not_outages() -> None:
    assert not is_outage(ValueError("bad"))
    assert not is_outage(FileNotFoundError(2, "No such file"))
    assert not is_outage(asyncpg.InterfaceError("another operation is in progress"))
    assert not is_outage(asyncpg.UniqueViolationError("duplicate key"))


async def database_down(request: bytes, context: Any) -> bytes:
    raise asyncpg.CannotConnectNowError("the database system is starting up")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    policies = {"/test.Svc/Orders": PUBLIC, "/test.Svc/NotYetRegistered": PUBLIC}
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor("test", policies, lambda: None, trust_gateway=False)]
    )
    handlers = {"Orders": grpc.unary_unary_rpc_method_handler(database_down)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield chan
    await server.stop(None)


async def _error(channel: grpc.aio.Channel, method: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await channel.unary_unary(f"/test.Svc/{method}", None, None)(b"hi")
    return raised.value


async def test_a_call_that_meets_a_restarting_database_is_unavailable_with_retry_after(
    channel: grpc.aio.Channel,
) -> None:
    error = await _error(channel, "Orders")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "test cannot reach a dependency right now; retry in 1 s."
    trailers: dict[str, str] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailers["retry-after"] == "1"


async def test_a_method_not_registered_yet_is_unavailable_while_starting(
    channel: grpc.aio.Channel,
) -> None:
    error = await _error(channel, "NotYetRegistered")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "The test service is starting; retry in 1 s."
    # A method the service does not have at all is still UNIMPLEMENTED.
    assert (await _error(channel, "NoSuchMethod")).code() == grpc.StatusCode.UNIMPLEMENTED
