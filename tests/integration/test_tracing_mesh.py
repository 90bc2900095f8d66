"""One trace from the gateway to the fill: `cift up --otlp-endpoint` exports from every process.

A whole mesh runs with CIFT_OTEL_EXPORTER=otlp pointed at a real OTLP/gRPC collector (a
gRPC server speaking opentelemetry-proto's TraceService) started by the test. A market
order sent through the gateway's REST API must then leave one trace holding the
gateway's span, execution's SubmitOrder, risk's check, and the Kafka consumer that
reads the fill from `execution.fills.v1`.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from cift.runtime.config import env_name
from cift.stack.launcher import Stack, StackInfo, StackOptions
from tests.e2e.e2e_client import SYMBOL, Rest, eventually, market_order, register_and_login

pytestmark = pytest.mark.integration


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every exported span as (service.name, span) by trace id."""

    def __init__(self) -> None:
        self.traces: dict[bytes, list[tuple[str, Any]]] = defaultdict(list)

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = resource_spans.resource.attributes
            service = next(
                (a.value.string_value for a in attributes if a.key == "service.name"), ""
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.traces[span.trace_id].append((service, span))
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server()
    servicer = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced_stack(
    collector: tuple[Collector, int], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[StackInfo]:
    _, port = collector
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    environ[env_name("otel_exporter")] = "otlp"
    environ[env_name("otel_endpoint")] = f"http://127.0.0.1:{port}"
    home: Path = tmp_path_factory.mktemp("cift-traced")
    launcher = Stack(StackOptions(home=home, free_ports=True, durable=False), environ)
    info = await launcher.start()
    try:
        yield info
    finally:
        await launcher.stop()


def services_in(spans: list[tuple[str, Any]]) -> set[str]:
    return {service for service, _ in spans}


async def test_a_market_order_leaves_one_trace_from_the_gateway_to_the_fill(
    traced_stack: StackInfo, collector: tuple[Collector, int]
) -> None:
    servicer, _ = collector
    assert traced_stack.gateway_url is not None
    rest = Rest(traced_stack.gateway_url)

    def trade() -> str:
        trader = register_and_login(rest, "traced")
        eventually(
            lambda: rest.call("GET", f"/v1/quotes/{SYMBOL}", token=trader.access_token).ok,
            "a first quote",
            timeout_s=30,
        )

        def priced() -> Any:
            # Market data serving a quote does not mean execution has taken one off the
            # ticks topic yet (a fresh stack's consumer joins after the first ticks):
            # until then a market order is refused as one that cannot be priced.
            response = rest.call(
                "POST", "/v1/orders", token=trader.access_token, json=market_order()
            )
            if response.status_code == 400 and "cannot be priced" in response.text:
                return None
            assert response.ok, f"POST /v1/orders → {response.status_code}: {response.text}"
            return response.json()["order"]

        order = eventually(priced, "a market order execution can price", timeout_s=30)
        order_id: str = order["id"]
        eventually(
            lambda: (
                rest.ok("GET", f"/v1/orders/{order_id}", token=trader.access_token)["order"][
                    "status"
                ]
                == "ORDER_STATUS_FILLED"
            ),
            "the market order to fill",
            timeout_s=30,
        )
        return order_id

    await asyncio.to_thread(trade)

    def submit_trace() -> list[tuple[str, Any]] | None:
        for spans in servicer.traces.values():
            names = {span.name for _, span in spans}
            if any("SubmitOrder" in name for name in names) and any(
                name == "consume execution.fills.v1" for name in names
            ):
                return spans
        return None

    deadline = asyncio.get_running_loop().time() + 30
    spans = submit_trace()
    while spans is None or not {"cift-gateway", "cift-execution", "cift-risk"} <= services_in(
        spans
    ):
        assert asyncio.get_running_loop().time() < deadline, (
            "no trace spans gateway → execution → risk → Kafka → fill; traces seen: "
            + repr([sorted({(s, sp.name) for s, sp in t}) for t in servicer.traces.values()][:10])
        )
        await asyncio.sleep(0.5)
        spans = submit_trace()

    by_service: dict[str, set[str]] = defaultdict(set)
    for service, span in spans:
        by_service[service].add(span.name)
    assert any("SubmitOrder" in name for name in by_service["cift-execution"])
    assert any("CheckOrder" in name for name in by_service["cift-risk"])
    assert "consume execution.fills.v1" in {name for names in by_service.values() for name in names}
    # One root: the gateway's span, which every other span descends from.
    span_ids = {span.span_id for _, span in spans}
    roots = [(service, span) for service, span in spans if span.parent_span_id not in span_ids]
    assert [service for service, _ in roots] == ["cift-gateway"], roots
