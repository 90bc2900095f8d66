"""OpenTelemetry tracing whose context crosses gRPC metadata and Kafka headers.

The W3C `traceparent`/`tracestate` carriers are used everywhere so a trace started
by a gateway request continues through execution, risk and the Kafka consumers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_memory_exporter: InMemorySpanExporter | None = None


EXPORTERS = ("none", "otlp", "console", "memory")


def build_provider(service: str, exporter: str, endpoint: str = "") -> TracerProvider | None:
    """The tracer provider for `exporter`; None for "none" (spans stay non-recording).

    OTLP spans leave in batches from a background thread, so a slow or absent
    collector never holds up a request; the console and memory exporters write each
    span as it ends (they are for a terminal and for tests).
    """
    global _memory_exporter
    if exporter not in EXPORTERS:
        raise ValueError(
            f"CIFT_OTEL_EXPORTER must be one of {', '.join(EXPORTERS)}, not {exporter!r}"
        )
    if exporter == "none":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": f"cift-{service}"}))
    if exporter == "otlp":
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        _memory_exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_memory_exporter))
    return provider


def configure_tracing(service: str, exporter: str, endpoint: str = "") -> None:
    """Install the process's tracer provider (see `build_provider`).

    With "none" no SDK provider is installed: spans are non-recording but still carry
    an incoming trace context onward, so tracing costs nothing until it is turned on.
    """
    provider = build_provider(service, exporter, endpoint)
    if provider is not None:
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
