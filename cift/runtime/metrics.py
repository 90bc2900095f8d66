"""Prometheus metrics every service exports: per-RPC count, latency and errors by code."""

from __future__ import annotations

import errno

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from cift.runtime.errors import Unavailable

RPC_REQUESTS = Counter(
    "cift_rpc_requests_total",
    "RPCs handled, by method and final status code.",
    ["service", "method", "code"],
)
RPC_ERRORS = Counter(
    "cift_rpc_errors_total",
    "RPCs that ended with a non-OK status, by code.",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "cift_rpc_latency_seconds",
    "Time from receiving an RPC to its final status (streams: the stream's lifetime).",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
KAFKA_EVENTS = Counter(
    "cift_kafka_events_total",
    "Kafka events produced or consumed.",
    ["service", "topic", "direction"],
)

KAFKA_CONSUMER_LAG = Gauge(
    "cift_kafka_consumer_lag",
    "Records a consumer group has yet to read in a partition (librdkafka's consumer_lag, "
    "refreshed every few seconds).",
    ["service", "group", "topic", "partition"],
)
KAFKA_CONSUME_DELAY = Histogram(
    "cift_kafka_consume_delay_seconds",
    "Time from a record's Kafka timestamp (when it was produced) to its batch reaching the "
    "handler; for execution's ticks this is the fill engine's lag behind the market.",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def record_rpc(service: str, method: str, code: str, elapsed_s: float) -> None:
    RPC_REQUESTS.labels(service, method, code).inc()
    RPC_LATENCY.labels(service, method).observe(elapsed_s)
    if code != "OK":
        RPC_ERRORS.labels(service, method, code).inc()


def serve_metrics(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
    """Start the /metrics HTTP endpoint on its own thread; port 0 disables it."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise Unavailable(f"metrics port {host}:{port} is already in use") from None
        raise
