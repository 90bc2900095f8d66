"""Typed configuration read from `CIFT_*` environment variables.

Every setting a process reads is a field of one of these dataclasses, so the set
of variables is declared in exactly one place: the launcher, the Kubernetes
manifests and the tests read the declarations instead of repeating names. Nothing
else in the code base may read `os.environ` for `CIFT_*` settings.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

PREFIX = "CIFT_"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def setting(default: Any, doc: str) -> Any:
    """Declare a field with its default and a sentence for operators."""
    return field(default=default, metadata={"doc": doc})


def secret_setting(doc: str) -> Any:
    """Declare a credential: empty by default, left out of the config's repr (and so of logs)."""
    return field(default="", repr=False, metadata={"doc": doc, "secret": True})


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


@dataclass(frozen=True)
class CommonConfig:
    """Settings every service process reads."""

    service_name: str = setting(
        "", "Which service this process runs (auth, marketdata, execution, risk, backtest)."
    )
    grpc_host: str = setting("127.0.0.1", "Address the gRPC server binds.")
    grpc_port: int = setting(0, "Port the gRPC server binds (each service has its default).")
    metrics_port: int = setting(0, "Port of the Prometheus /metrics endpoint (0 disables it).")
    database_url: str = setting(
        "postgresql://postgres@127.0.0.1:55432/cift",
        "PostgreSQL DSN; each service uses its own schema.",
    )
    db_pool_min: int = setting(1, "Minimum connections in the asyncpg pool.")
    db_pool_max: int = setting(8, "Maximum connections in the asyncpg pool.")
    redis_url: str = setting("redis://127.0.0.1:56379/0", "Redis URL.")
    kafka_bootstrap: str = setting("127.0.0.1:59092", "Kafka bootstrap servers, comma separated.")
    kafka_session_timeout_ms: int = setting(
        10_000,
        "Consumer-group session: how long the broker waits for a dead member before it "
        "rebalances (a restarted service waits about twice this for its partitions). "
        "Kafka refuses less than its group.min.session.timeout.ms (6000 by default).",
    )
    auth_addr: str = setting("127.0.0.1:50051", "gRPC address of the auth service (JWKS).")
    marketdata_addr: str = setting("127.0.0.1:50052", "gRPC address of the market data service.")
    execution_addr: str = setting("127.0.0.1:50053", "gRPC address of the execution service.")
    risk_addr: str = setting("127.0.0.1:50054", "gRPC address of the risk service.")
    backtest_addr: str = setting("127.0.0.1:50055", "gRPC address of the backtest service.")
    trust_gateway_identity: bool = setting(
        False,
        "Trust plain x-cift-* identity headers set by the gateway instead of verifying a JWT.",
    )
    jwt_issuer: str = setting("cift-auth", "Expected `iss` of access tokens.")
    jwt_audience: str = setting("cift", "Expected `aud` of access tokens.")
    jwks_cache_s: float = setting(60.0, "How long a fetched JWKS is reused before refreshing.")
    opening_cash: Decimal = setting(Decimal("100000"), "Cash a new paper account opens with.")
    log_level: str = setting("INFO", "Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = setting("json", "Log format: json (one object per line) or text.")
    otel_exporter: str = setting(
        "none", "Trace exporter: none, otlp (to CIFT_OTEL_ENDPOINT), console, or memory (tests)."
    )
    otel_endpoint: str = setting(
        "http://127.0.0.1:4317",
        "OTLP/gRPC collector the otlp exporter sends spans to (http:// means no TLS).",
    )
    drain_timeout_s: float = setting(
        10.0, "Seconds SIGTERM waits for in-flight calls before closing."
    )
    dependency_timeout_s: float = setting(
        30.0, "Seconds to wait for databases and brokers at start."
    )


C = TypeVar("C", bound=CommonConfig)


def _convert(name: str, raw: str, annotation: Any) -> Any:
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    if annotation is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if annotation is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if annotation is Decimal:
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ConfigError(f"{name} must be a decimal number, not {raw!r}") from None
        if not value.is_finite():
            raise ConfigError(f"{name} must be finite, not {raw!r}")
        return value
    if annotation is str:
        return raw
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if raw == "" else _convert(name, raw, args[0])
    raise ConfigError(f"{name}: unsupported setting type {annotation!r}")


def load(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Build `cls` from the environment; explicit overrides win (tests, launcher)."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = env_name(f.name)
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif name in env:
            values[f.name] = _convert(name, env[name], hints[f.name])
    return cls(**values)


def declared_settings(cls: type[CommonConfig]) -> dict[str, str]:
    """Map each environment variable `cls` reads to its documentation."""
    return {env_name(f.name): str(f.metadata.get("doc", "")) for f in dataclasses.fields(cls)}


def to_environ(config: CommonConfig) -> dict[str, str]:
    """Render a config back to environment variables (the launcher hands these to children)."""
    rendered: dict[str, str] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(str(v) for v in value)
        elif value is None:
            text = ""
        else:
            text = str(value)
        rendered[env_name(f.name)] = text
    return rendered


SERVICE_PORTS: dict[str, tuple[int, int]] = {
    "auth": (50051, 9101),
    "marketdata": (50052, 9102),
    "execution": (50053, 9103),
    "risk": (50054, 9104),
    "backtest": (50055, 9105),
}


def load_service(cls: type[C], service_name: str, environ: Mapping[str, str] | None = None) -> C:
    """Load a service's config, filling its default ports when none are set."""
    config = load(cls, environ, service_name=service_name)
    grpc_port, metrics_port = SERVICE_PORTS.get(
        service_name, (config.grpc_port, config.metrics_port)
    )
    env = os.environ if environ is None else environ
    return dataclasses.replace(
        config,
        grpc_port=config.grpc_port if env_name("grpc_port") in env else grpc_port,
        metrics_port=config.metrics_port if env_name("metrics_port") in env else metrics_port,
    )
