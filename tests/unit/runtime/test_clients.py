"""Outgoing channels forward the caller's credential on every call shape, streams included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from cift.runtime.clients import open_channel
from cift.runtime.identity import IDENTITY_TOKEN_HEADER, Identity, acting_as

ALICE = Identity(user_id="u-alice", account_id="acct-alice", scopes=frozenset(), token="tok-alice")


def _credential(context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    metadata = dict(context.invocation_metadata() or ())
    return str(metadata.get(IDENTITY_TOKEN_HEADER, "")).encode()


async def _unary(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return _credential(context)


async def _server_stream(
    _request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield _credential(context)


async def _client_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> bytes:
    async for _ in requests:
        pass
    return _credential(context)


async def _bidi(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    async for _ in requests:
        yield _credential(context)


@pytest.fixture
async def address() -> AsyncIterator[str]:
    def handler(kind: str, behaviour: Any) -> grpc.RpcMethodHandler[Any, Any]:
        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        return factory(behaviour)  # type: ignore[no-any-return]

    server = grpc.aio.server()
    handlers = {
        "Unary": handler("unary_unary", _unary),
        "ServerStream": handler("unary_stream", _server_stream),
        "ClientStream": handler("stream_unary", _client_stream),
        "Bidi": handler("stream_stream", _bidi),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def _one() -> AsyncIterator[bytes]:
    yield b"x"


async def test_every_call_shape_carries_the_callers_credential(address: str) -> None:
    channel = open_channel(address)
    try:
        with acting_as(ALICE):
            unary = await channel.unary_unary("/test.Svc/Unary", None, None)(b"x")
            streamed = [
                m async for m in channel.unary_stream("/test.Svc/ServerStream", None, None)(b"x")
            ]
            client_streamed = await channel.stream_unary("/test.Svc/ClientStream", None, None)(
                _one()
            )
            bidi = [m async for m in channel.stream_stream("/test.Svc/Bidi", None, None)(_one())]
    finally:
        await channel.close(None)
    assert (unary, streamed, client_streamed, bidi) == (
        b"tok-alice",
        [b"tok-alice"],
        b"tok-alice",
        [b"tok-alice"],
    )


async def test_a_call_made_for_no_one_carries_no_credential(address: str) -> None:
    channel = open_channel(address)
    try:
        streamed = [
            m async for m in channel.unary_stream("/test.Svc/ServerStream", None, None)(b"x")
        ]
    finally:
        await channel.close(None)
    assert streamed == [b""]
