"""Outgoing gRPC channels between services.

Calls made on behalf of a user carry that user's verified credential (so the
callee checks it again rather than trusting the network) and the trace context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from cift.runtime.identity import IDENTITY_TOKEN_HEADER, maybe_identity
from cift.runtime.tracing import inject_metadata


def _outgoing_metadata(metadata: Any) -> list[tuple[str, str | bytes]]:
    outgoing: list[tuple[str, str | bytes]] = list(metadata or ())
    identity = maybe_identity()
    if (
        identity is not None
        and identity.token
        and not any(key == IDENTITY_TOKEN_HEADER for key, _ in outgoing)
    ):
        outgoing.append((IDENTITY_TOKEN_HEADER, identity.token))
    carrier: list[tuple[str, str]] = []
    inject_metadata(carrier)
    outgoing.extend(carrier)
    return outgoing


if TYPE_CHECKING:
    _UU = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _US = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _SU = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _SS = grpc.aio.StreamStreamClientInterceptor[Any, Any]
else:
    _UU = grpc.aio.UnaryUnaryClientInterceptor
    _US = grpc.aio.UnaryStreamClientInterceptor
    _SU = grpc.aio.StreamUnaryClientInterceptor
    _SS = grpc.aio.StreamStreamClientInterceptor


class _Forwarding:
    """Adds the caller's identity token and the trace context to a call's metadata."""

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=grpc.aio.Metadata(*_outgoing_metadata(details.metadata)),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


# One interceptor per call shape: grpc.aio files each interceptor under the first
# shape it is an instance of only, so one object deriving from all four would
# intercept unary calls alone, and streams (ExportBars, CheckOrders) would go out
# without the caller's credential.
class _ForwardUnaryUnary(_Forwarding, _UU):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _ForwardUnaryStream(_Forwarding, _US):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _ForwardStreamUnary(_Forwarding, _SU):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._details(details), requests)


class _ForwardStreamStream(_Forwarding, _SS):
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._details(details), requests)


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel (the mesh runs inside one trust zone; add mTLS at the mesh layer)."""
    forwarding: list[Any] = [
        _ForwardUnaryUnary(),
        _ForwardUnaryStream(),
        _ForwardStreamUnary(),
        _ForwardStreamStream(),
    ]
    return grpc.aio.insecure_channel(
        address,
        interceptors=forwarding,
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.enable_retries", 1),
        ],
    )
