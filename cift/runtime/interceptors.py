"""The server interceptor chain every service runs, in one pass per RPC.

Order matters and is fixed here: trace context is extracted first (so logs and
errors carry the trace id), then the caller is authenticated and the RPC's scope
enforced, then the request message is checked for values no service can take
(`cift.runtime.validation`), then the handler runs; domain errors become gRPC statuses and every
outcome is counted. Handlers never see an unauthenticated call unless its policy
says the RPC is public.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace

from cift.runtime import errors
from cift.runtime.identity import (
    ACCOUNT_ID_HEADER,
    API_KEY_ID_HEADER,
    IDENTITY_TOKEN_HEADER,
    SCOPES_HEADER,
    USER_ID_HEADER,
    Identity,
    bind_identity,
)
from cift.runtime.metrics import record_rpc
from cift.runtime.outages import RETRY_AFTER_S, is_outage
from cift.runtime.tracing import extract_metadata
from cift.runtime.validation import check_request

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor

REASON_TRAILER = "cift-reason"
RETRY_AFTER_TRAILER = "retry-after"

_STATUS = {
    cls.code_name: getattr(grpc.StatusCode, cls.code_name)
    for cls in (
        errors.InvalidArgument,
        errors.NotFound,
        errors.AlreadyExists,
        errors.FailedPrecondition,
        errors.PermissionDenied,
        errors.Unauthenticated,
        errors.Unavailable,
        errors.ResourceExhausted,
    )
}

# Infrastructure services any caller (probes, grpcurl) may use without a credential.
_PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


@dataclass(frozen=True)
class RpcPolicy:
    """What an RPC requires of its caller: nothing (public) or a scope."""

    scope: str | None = None
    public: bool = False


PUBLIC = RpcPolicy(public=True)


class CredentialVerifier(Protocol):
    """Turns a credential into a verified identity, or raises Unauthenticated."""

    async def verify_token(self, token: str) -> Identity: ...

    async def verify_api_key(self, api_key: str) -> Identity: ...


def retry_after_header(retry_after_s: float) -> str:
    """Whole seconds, rounded up and at least 1: HTTP's Retry-After takes no fraction."""
    return str(max(1, math.ceil(retry_after_s)))


def _metadata_value(metadata: Mapping[str, str], key: str) -> str:
    return metadata.get(key, "").strip()


def _bearer_token(metadata: Mapping[str, str]) -> str:
    authorization = _metadata_value(metadata, "authorization")
    scheme, _, credential = authorization.partition(" ")
    if authorization and scheme.lower() != "bearer":
        raise errors.Unauthenticated("The authorization header must be 'Bearer <access token>'.")
    return credential.strip()


async def authenticate(
    metadata: Mapping[str, str], verifier: CredentialVerifier | None, *, trust_gateway: bool
) -> Identity:
    """Find and verify the caller's credential in request metadata."""
    if trust_gateway and _metadata_value(metadata, USER_ID_HEADER):
        # The token travels on with outgoing calls: the identity token auth's check
        # set (API keys), or the access token the gateway verified and passed on.
        return Identity(
            user_id=_metadata_value(metadata, USER_ID_HEADER),
            account_id=_metadata_value(metadata, ACCOUNT_ID_HEADER),
            scopes=frozenset(_metadata_value(metadata, SCOPES_HEADER).split()),
            token=_metadata_value(metadata, IDENTITY_TOKEN_HEADER) or _bearer_token(metadata),
            api_key_id=_metadata_value(metadata, API_KEY_ID_HEADER),
        )
    if verifier is None:
        raise errors.Unavailable("Credential verification is not ready yet; retry shortly.")
    token = _metadata_value(metadata, IDENTITY_TOKEN_HEADER) or _bearer_token(metadata)
    if token:
        return await verifier.verify_token(token)
    api_key = _metadata_value(metadata, "x-api-key")
    if api_key:
        return await verifier.verify_api_key(api_key)
    raise errors.Unauthenticated(
        "This call needs a credential: send 'authorization: Bearer <token>' or 'x-api-key'."
    )


class ServiceInterceptor(_ServerInterceptor):
    """Tracing, authentication, scope checks, error mapping and metrics for one service."""

    def __init__(
        self,
        service: str,
        policies: Mapping[str, RpcPolicy],
        verifier: Callable[[], CredentialVerifier | None],
        *,
        trust_gateway: bool,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.service = service
        self.policies = policies
        self.verifier = verifier
        self.trust_gateway = trust_gateway
        self.tracer = tracer or trace.get_tracer("cift.rpc")

    def policy_for(self, method: str) -> RpcPolicy | None:
        if method.startswith(_PUBLIC_PREFIXES):
            return PUBLIC
        return self.policies.get(method)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        # grpc's stubs say a handler always comes back; for an unregistered method it is None.
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            # A method of this service without a handler yet: the server answers health
            # checks before setup registers the servicer. Retry, not UNIMPLEMENTED.
            # None, as grpc's stubs do not allow: grpc answers UNIMPLEMENTED.
            return _starting_handler(self.service) if method in self.policies else None  # type: ignore[return-value]
        raw_metadata = handler_call_details.invocation_metadata or ()
        metadata = {key: value for key, value in raw_metadata if isinstance(value, str)}
        return _wrap_handler(handler, _Call(self, method, metadata))


class _Call:
    """Per-RPC state shared by the four handler shapes."""

    def __init__(self, chain: ServiceInterceptor, method: str, metadata: dict[str, str]) -> None:
        self.chain = chain
        self.method = method
        self.metadata = metadata
        self.short_method = method.rsplit("/", 1)[-1]

    async def identity(self) -> Identity | None:
        policy = self.chain.policy_for(self.method)
        if policy is None:
            raise errors.PermissionDenied(f"{self.method} has no access policy and is refused.")
        if policy.public:
            return None
        identity = await authenticate(
            self.metadata, self.chain.verifier(), trust_gateway=self.chain.trust_gateway
        )
        if policy.scope is not None:
            identity.require_scope(policy.scope)
        return identity

    async def fail(self, context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> str:
        """Turn an exception into a status on `context`; returns the status code name."""
        if isinstance(exc, errors.DomainError):
            trailers: list[tuple[str, str]] = []
            if exc.reason:
                trailers.append((REASON_TRAILER, exc.reason))
            if isinstance(exc, errors.ResourceExhausted):
                trailers.append((RETRY_AFTER_TRAILER, retry_after_header(exc.retry_after_s)))
            if isinstance(exc, errors.Unavailable):
                trailers.append((RETRY_AFTER_TRAILER, str(RETRY_AFTER_S)))
            context.set_trailing_metadata(tuple(trailers))
            await context.abort(_STATUS[exc.code_name], exc.message)
        trace_id = self.trace_id()
        log.exception("unhandled error in %s", self.method, extra={"error_trace_id": trace_id})
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"Internal error; quote trace id {trace_id} when reporting it.",
        )

    def trace_id(self) -> str:
        """An id that finds this call's log lines: the trace's, else the gateway's request id.

        Without a tracer provider (CIFT_OTEL_EXPORTER=none) and without an incoming
        traceparent the span is non-recording and its trace id is all zeros, which
        names nothing; the gateway's x-request-id (also in the client's response
        headers) does, and a fresh random id still names the logged error.
        """
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            return f"{span_context.trace_id:032x}"
        request_id = self.metadata.get("x-request-id", "")
        try:
            return uuid.UUID(request_id).hex
        except ValueError:
            return uuid.uuid4().hex

    def code_of(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        # Typed a StatusCode; None (nothing set yet) or an int at run time.
        code: object = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name
        return "OK" if code in (None, 0) else str(code)

    def start_span(self) -> trace.Span:
        """Open the server span as a child of the caller's trace context and make it current.

        The context is attached without a matching detach on purpose: grpc.aio runs
        each RPC in its own task, and a server stream the client cancels is closed
        later from another task, where detaching (or resetting a context variable)
        would fail. The binding ends with the RPC's task.
        """
        parent = extract_metadata(self.metadata.items())
        span = self.chain.tracer.start_span(
            self.method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": self.chain.service,
                "rpc.method": self.short_method,
            },
        )
        otel_context.attach(trace.set_span_in_context(span, parent))
        return span


@asynccontextmanager
async def _guard(
    call: _Call, context: grpc.aio.ServicerContext[Any, Any], request: Any = None
) -> AsyncIterator[None]:
    """Trace, authenticate, check the request, map errors and record metrics around one RPC."""
    started = time.perf_counter()
    code = "OK"
    span = call.start_span()
    try:
        bind_identity(await call.identity())
        if isinstance(request, Message):
            check_request(request)
        yield
        code = call.code_of(context)
    except (asyncio.CancelledError, GeneratorExit):
        # GeneratorExit: the client cancelled a server stream mid-way.
        code = "CANCELLED"
        raise
    except grpc.aio.AbortError:
        code = call.code_of(context)
        raise
    except Exception as exc:
        if is_outage(exc):
            log.warning("%s met an outage: %s", call.method, exc)
            exc = errors.Unavailable(
                f"{call.chain.service} cannot reach a dependency right now; "
                f"retry in {RETRY_AFTER_S} s."
            )
        code = exc.code_name if isinstance(exc, errors.DomainError) else "INTERNAL"
        await call.fail(context, exc)
    finally:
        if code != "OK":
            span.set_status(trace.Status(trace.StatusCode.ERROR, code))
        span.set_attribute("rpc.grpc.status_code", code)
        span.end()
        record_rpc(call.chain.service, call.short_method, code, time.perf_counter() - started)


def _starting_handler(service: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        context.set_trailing_metadata(((RETRY_AFTER_TRAILER, str(RETRY_AFTER_S)),))
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"The {service} service is starting; retry in {RETRY_AFTER_S} s.",
        )

    return grpc.unary_unary_rpc_method_handler(refuse)


def _wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], call: _Call
) -> grpc.RpcMethodHandler[Any, Any]:
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary or handler.stream_unary:
        inner_unary: Any = handler.unary_unary or handler.stream_unary

        async def unary_response(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            # A client stream's requests (internal callers only) arrive later, unchecked.
            async with _guard(call, context, request):
                return await inner_unary(request, context)

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary_response, **kwargs)
        return grpc.stream_unary_rpc_method_handler(unary_response, **kwargs)

    inner_stream: Any = handler.unary_stream or handler.stream_stream

    async def streaming(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        # Handlers may be async generators or write through context.write(); both
        # run inside the guard so identity, errors and metrics cover the whole stream.
        async with _guard(call, context, request):
            produced = inner_stream(request, context)
            if inspect.isasyncgen(produced):
                async for item in produced:
                    yield item
            else:
                await produced

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
