"""CIFT_OTEL_EXPORTER=otlp: spans reach an OTLP/gRPC collector, named for the service.

The collector is a real gRPC server speaking the OTLP trace service (the stubs of
the opentelemetry-proto package), so the exporter's whole path runs: batching
thread, protobuf encoding, the gRPC call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from cift.runtime.tracing import build_provider

pytestmark = pytest.mark.integration


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.arrived = asyncio.Event()

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        self.arrived.set()
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest_asyncio.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    server = grpc.aio.server()
    servicer = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"http://127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_spans_reach_the_collector_with_the_service_name(
    collector: tuple[Collector, str],
) -> None:
    servicer, endpoint = collector
    provider = build_provider("risk", "otlp", endpoint)
    assert provider is not None
    try:
        with provider.get_tracer("test").start_as_current_span("CheckOrder") as span:
            span.set_attribute("rpc.method", "CheckOrder")
            trace_id = span.get_span_context().trace_id
        # The exporter's client is synchronous; flush off the loop the collector runs on.
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        await asyncio.wait_for(servicer.arrived.wait(), 10)
    finally:
        await asyncio.to_thread(provider.shutdown)

    (resource_spans,) = servicer.requests[0].resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "cift-risk"
    (exported,) = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert exported.name == "CheckOrder"
    assert int.from_bytes(exported.trace_id, "big") == trace_id


def test_none_installs_nothing_and_an_unknown_exporter_is_refused() -> None:
    assert build_provider("risk", "none") is None
    with pytest.raises(ValueError, match="must be one of none, otlp, console, memory"):
        build_provider("risk", "jaeger")
