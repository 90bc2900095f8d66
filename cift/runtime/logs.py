"""Structured logs: one JSON object per line, carrying the service and trace ids.

Operators grep and ship these; a log line must never contain a credential, so
callers log identifiers (user id, key prefix), never tokens or passwords.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from opentelemetry import trace

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka client logs every rebalance at INFO; keep it to warnings unless debugging.
    logging.getLogger("cift.runtime.kafka.librdkafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("grpc._cython.cygrpc").addFilter(_late_registration_notice)


def _late_registration_notice(record: logging.LogRecord) -> bool:
    """Drop grpc's notice that servicers were added after the server started.

    The runtime starts the server first so health answers NOT_SERVING during
    migrations, then wires the servicers. grpc then serves them through its generic
    handler lookup instead of the registered-method table, which measured no
    different here (REPORT-auth.md), so the warning at every start is noise.
    """
    return "Cannot register method handlers once server has started" not in record.getMessage()
