"""The interceptor chain: credentials, scopes, error mapping and metrics on a real grpc.aio server."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from cift.execution.v1 import execution_pb2
from cift.runtime import errors
from cift.runtime.identity import Identity, current_identity
from cift.runtime.interceptors import PUBLIC, RpcPolicy, ServiceInterceptor, authenticate

ALICE = Identity(
    user_id="u-alice", account_id="acct-alice", scopes=frozenset({"read"}), token="tok-alice"
)


class StaticVerifier:
    """Knows one token and one API key; a stand-in for the JWKS verifier in unit tests."""

    async def verify_token(self, token: str) -> Identity:
        if token == "tok-alice":
            return ALICE
        raise errors.Unauthenticated("The access token is invalid.")

    async def verify_api_key(self, api_key: str) -> Identity:
        if api_key == "key-alice":
            return ALICE
        raise errors.Unauthenticated("The API key is invalid.")


def _identity_text() -> bytes:
    identity = current_identity()
    return f"{identity.user_id}/{identity.account_id}".encode()


async def whoami(request: bytes, context: Any) -> bytes:
    return _identity_text()


async def public_echo(request: bytes, context: Any) -> bytes:
    return request


async def trace_id(request: bytes, context: Any) -> bytes:
    return format(trace.get_current_span().get_span_context().trace_id, "032x").encode()


async def limited(request: bytes, context: Any) -> bytes:
    raise errors.ResourceExhausted(
        "Too many orders; slow down.", retry_after_s=1.5, reason="RATE_LIMITED"
    )


async def broken(request: bytes, context: Any) -> bytes:
    raise ValueError("secret internal detail")


async def forever(request: bytes, context: Any) -> AsyncIterator[bytes]:
    # Never sleeps: it is suspended at `yield` (blocked on flow control) when the
    # client cancels, so grpc closes it later from another task and context.
    while True:
        yield b"tick" * 1000


async def countdown(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for number in range(int(request.decode()), 0, -1):
        yield str(number).encode()
    raise errors.FailedPrecondition("Countdown reached zero.")


def _bytes_handler(kind: str, behavior: Any) -> grpc.RpcMethodHandler[Any, Any]:
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(behavior)  # type: ignore[no-any-return]


POLICIES = {
    "/test.Svc/WhoAmI": RpcPolicy(scope="read"),
    "/test.Svc/Echo": PUBLIC,
    "/test.Svc/TraceId": PUBLIC,
    "/test.Svc/Admin": RpcPolicy(scope="admin"),
    "/test.Svc/Limited": RpcPolicy(scope="read"),
    "/test.Svc/Broken": RpcPolicy(scope="read"),
    "/test.Svc/Countdown": RpcPolicy(scope="read"),
    "/test.Svc/Forever": RpcPolicy(scope="read"),
    "/test.Svc/ListOrders": PUBLIC,
}


SPANS = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(SPANS))


async def list_orders(request: execution_pb2.ListOrdersRequest, context: Any) -> bytes:
    return ",".join(request.symbols).encode()


@asynccontextmanager
async def serving(tracer: trace.Tracer) -> AsyncIterator[grpc.aio.Channel]:
    verifier = StaticVerifier()
    chain = ServiceInterceptor(
        "test", POLICIES, lambda: verifier, trust_gateway=False, tracer=tracer
    )
    server = grpc.aio.server(interceptors=[chain])
    handlers = {
        "WhoAmI": _bytes_handler("unary_unary", whoami),
        "Echo": _bytes_handler("unary_unary", public_echo),
        "TraceId": _bytes_handler("unary_unary", trace_id),
        "Admin": _bytes_handler("unary_unary", whoami),
        "Unlisted": _bytes_handler("unary_unary", whoami),
        "Limited": _bytes_handler("unary_unary", limited),
        "Broken": _bytes_handler("unary_unary", broken),
        "Countdown": _bytes_handler("unary_stream", countdown),
        "Forever": _bytes_handler("unary_stream", forever),
        "ListOrders": grpc.unary_unary_rpc_method_handler(
            list_orders, request_deserializer=execution_pb2.ListOrdersRequest.FromString
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield chan
    await server.stop(None)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    async with serving(_PROVIDER.get_tracer("t")) as chan:
        yield chan


@pytest.fixture
async def untraced_channel() -> AsyncIterator[grpc.aio.Channel]:
    """A service with tracing off (CIFT_OTEL_EXPORTER=none): its spans are non-recording."""
    async with serving(trace.NoOpTracer()) as chan:
        yield chan


async def _call(
    channel: grpc.aio.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()
) -> bytes:
    return await channel.unary_unary(f"/test.Svc/{method}", None, None)(b"hi", metadata=metadata)  # type: ignore[no-any-return]


async def test_bearer_token_binds_the_verified_identity(channel: grpc.aio.Channel) -> None:
    assert (
        await _call(channel, "WhoAmI", (("authorization", "Bearer tok-alice"),))
        == b"u-alice/acct-alice"
    )


async def test_api_key_is_accepted_like_a_token(channel: grpc.aio.Channel) -> None:
    assert await _call(channel, "WhoAmI", (("x-api-key", "key-alice"),)) == b"u-alice/acct-alice"


async def test_missing_credential_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "WhoAmI")
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization" in (raised.value.details() or "")


async def test_bad_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "WhoAmI", (("authorization", "Bearer forged"),))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_auth_scheme_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "WhoAmI", (("authorization", "Basic dXNlcjpwdw=="),))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_client_sent_identity_headers_are_ignored_unless_trusted(
    channel: grpc.aio.Channel,
) -> None:
    spoofed = (
        ("x-cift-user-id", "u-mallory"),
        ("x-cift-account-id", "acct-victim"),
        ("x-cift-scopes", "admin"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "WhoAmI", spoofed)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_trusted_gateway_headers_carry_the_token_that_travels_on() -> None:
    # API keys: auth's check set an identity token; JWTs verified by the gateway keep
    # their bearer token. Either is what outgoing calls forward as the credential.
    headers = {
        "x-cift-user-id": "u-alice",
        "x-cift-account-id": "acct-alice",
        "x-cift-scopes": "read trade",
    }
    by_jwt = await authenticate(
        headers | {"authorization": "Bearer tok-alice"}, None, trust_gateway=True
    )
    assert (by_jwt.account_id, by_jwt.scopes, by_jwt.token) == (
        "acct-alice",
        frozenset({"read", "trade"}),
        "tok-alice",
    )
    by_key = await authenticate(
        headers | {"x-cift-identity": "minted", "authorization": "Bearer tok-alice"},
        None,
        trust_gateway=True,
    )
    assert by_key.token == "minted"


async def test_missing_scope_is_permission_denied(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "Admin", (("authorization", "Bearer tok-alice"),))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in (raised.value.details() or "")


async def test_method_without_policy_is_refused(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "Unlisted", (("authorization", "Bearer tok-alice"),))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_public_method_needs_no_credential(channel: grpc.aio.Channel) -> None:
    assert await _call(channel, "Echo") == b"hi"


async def test_resource_exhausted_carries_retry_after_and_reason(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "Limited", (("authorization", "Bearer tok-alice"),))
    error = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers: dict[str, str] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
    # HTTP's Retry-After is whole seconds: 1.5 s is rounded up, never down.
    assert trailers["retry-after"] == "2"
    assert trailers["cift-reason"] == "RATE_LIMITED"


async def test_unexpected_error_is_internal_without_leaking_details(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, "Broken", (("authorization", "Bearer tok-alice"),))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (raised.value.details() or "")


async def test_an_internal_error_quotes_the_gateways_request_id_when_tracing_is_off(
    untraced_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    request_id = "0d3f8a2e-6b1c-4f7a-9e55-2a9f3c1b7d40"
    metadata = (("authorization", "Bearer tok-alice"), ("x-request-id", request_id))
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(untraced_channel, "Broken", metadata)
    details = raised.value.details() or ""
    assert f"quote trace id {request_id.replace('-', '')} " in details
    assert any(
        getattr(r, "error_trace_id", "") == request_id.replace("-", "") for r in caplog.records
    )


async def test_an_internal_error_never_quotes_an_all_zero_trace_id(
    untraced_channel: grpc.aio.Channel,
) -> None:
    quoted = set()
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _call(untraced_channel, "Broken", (("authorization", "Bearer tok-alice"),))
        match = re.search(r"trace id ([0-9a-f]{32}) ", raised.value.details() or "")
        assert match is not None and set(match.group(1)) != {"0"}
        quoted.add(match.group(1))
    assert len(quoted) == 2  # one id per error, so each report finds its own log line


async def test_a_request_no_service_can_take_is_refused_before_the_handler(
    channel: grpc.aio.Channel,
) -> None:
    call = channel.unary_unary("/test.Svc/ListOrders", None, None)
    accepted = execution_pb2.ListOrdersRequest(symbols=["AAPL", "MSFT"]).SerializeToString()
    assert await call(accepted) == b"AAPL,MSFT"
    refused = execution_pb2.ListOrdersRequest(symbols=["AAPL", "\x00"]).SerializeToString()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(refused)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "symbols[1] must not contain a NUL character (\\u0000)."


async def test_stream_delivers_items_then_maps_the_domain_error(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream("/test.Svc/Countdown", None, None)(
        b"3", metadata=(("authorization", "Bearer tok-alice"),)
    )
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for item in call:
            received.append(item)
    assert received == [b"3", b"2", b"1"]
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_every_outcome_is_counted_by_code(channel: grpc.aio.Channel) -> None:
    def count(code: str) -> float:
        value = REGISTRY.get_sample_value(
            "cift_rpc_requests_total", {"service": "test", "method": "WhoAmI", "code": code}
        )
        return value or 0.0

    ok_before, denied_before = count("OK"), count("UNAUTHENTICATED")
    await _call(channel, "WhoAmI", (("authorization", "Bearer tok-alice"),))
    with pytest.raises(grpc.aio.AioRpcError):
        await _call(channel, "WhoAmI")
    # The server counts after the status is sent, so the client may see it first.
    for _ in range(100):
        if count("UNAUTHENTICATED") > denied_before:
            break
        await asyncio.sleep(0.01)
    assert count("OK") == ok_before + 1
    assert count("UNAUTHENTICATED") == denied_before + 1


async def test_incoming_trace_context_parents_the_server_span(channel: grpc.aio.Channel) -> None:
    incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{incoming_trace}-00f067aa0ba902b7-01"
    seen = await _call(channel, "TraceId", (("traceparent", traceparent),))
    assert seen.decode() == incoming_trace
    server_span = next(
        span for span in SPANS.get_finished_spans() if span.name == "/test.Svc/TraceId"
    )
    assert server_span.parent is not None
    assert format(server_span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert server_span.attributes is not None and server_span.attributes["rpc.method"] == "TraceId"


async def test_client_cancelling_a_stream_is_counted_and_logs_no_error(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    def cancelled() -> float:
        labels = {"service": "test", "method": "Forever", "code": "CANCELLED"}
        return REGISTRY.get_sample_value("cift_rpc_requests_total", labels) or 0.0

    before = cancelled()
    call = channel.unary_stream("/test.Svc/Forever", None, None)(
        b"", metadata=(("authorization", "Bearer tok-alice"),)
    )
    with caplog.at_level(logging.ERROR):
        assert await call.read() == b"tick" * 1000
        await asyncio.sleep(0.2)  # let the server fill the flow-control window
        call.cancel()
        for _ in range(100):
            gc.collect()  # finalizes the abandoned generator, as the loop eventually would
            if cancelled() > before:
                break
            await asyncio.sleep(0.02)
    assert cancelled() == before + 1
    # grpc core itself logs the write that failed on the cancelled call; nothing else may.
    ours = [
        r for r in caplog.records if r.levelno >= logging.ERROR and not r.name.startswith("grpc.")
    ]
    assert not ours
