"""OpenTelemetry tracing whose context crosses gRPC metadata and Kafka headers.

The W3C `traceparent`/`tracestate` carriers are used everywhere so a trace started
by a gateway request continues through execution, risk and the Kafka consumers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_memory_exporter: InMemorySpanExporter | None = None


def configure_tracing(service: str, exporter: str) -> None:
    """Install the process's tracer provider; `exporter` is none, console or memory."""
    global _memory_exporter
    if exporter == "none":
        # No SDK provider: spans are non-recording but still carry an incoming
        # trace context onward, so tracing costs nothing until it is turned on.
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"cift-{service}"}))
    span_exporter: SpanExporter | None = None
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    elif exporter == "memory":
        _memory_exporter = InMemorySpanExporter()
        span_exporter = _memory_exporter
    else:
        raise ValueError(f"CIFT_OTEL_EXPORTER must be none, console or memory, not {exporter!r}")
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)


def memory_exporter() -> InMemorySpanExporter | None:
    """Spans recorded in memory (tests), when the memory exporter is configured."""
    return _memory_exporter


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_metadata(metadata: list[tuple[str, str]]) -> None:
    """Append the current trace context to outgoing gRPC metadata."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata.extend(carrier.items())


def extract_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> otel_context.Context:
    carrier = {key: value for key, value in metadata if isinstance(value, str)}
    return propagate.extract(carrier)


def inject_headers(headers: list[tuple[str, bytes]]) -> None:
    """Append the current trace context to outgoing Kafka headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers.extend((key, value.encode()) for key, value in carrier.items())


def extract_headers(
    headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes],
) -> otel_context.Context:
    items = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {key: value.decode(errors="replace") for key, value in items}
    return propagate.extract(carrier)
