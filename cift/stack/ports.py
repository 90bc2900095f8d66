"""Which ports the stack binds, checked before anything starts.

`cift up` uses the documented defaults (docs/DESIGN.md) so clients find the mesh;
the test fixtures ask the kernel for free ports so a test run never collides with
a user's `cift up` or with the machine's own PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from cift.runtime.config import SERVICE_PORTS, env_name
from cift.stack.errors import StackError
from cift.stack.settings import StackConfig

LOOPBACK = "127.0.0.1"


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port.

    SO_REUSEADDR makes a socket left in TIME_WAIT by the previous run count as free,
    exactly as it will for the servers, which all set it too.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports nobody listens on right now (all held until all are chosen)."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass(frozen=True)
class PortPlan:
    """Every port the launcher may bind, named for what listens there."""

    postgres: int
    redis: int
    kafka: int
    gateway: int
    gateway_admin: int
    grpc: Mapping[str, int] = field(default_factory=dict)
    metrics: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: StackConfig) -> PortPlan:
        """The configured ports (docs/DESIGN.md's by default); gRPC ports come from addresses."""
        grpc = {name: _port_of(getattr(config, f"{name}_addr")) for name in SERVICE_PORTS}
        return cls(
            postgres=config.embedded_postgres_port,
            redis=config.embedded_redis_port,
            kafka=config.embedded_kafka_port,
            gateway=config.gateway_port,
            gateway_admin=config.gateway_admin_port,
            grpc=grpc,
            metrics={name: getattr(config, f"{name}_metrics_port") for name in SERVICE_PORTS},
        )

    @classmethod
    def free(cls) -> PortPlan:
        names = list(SERVICE_PORTS)
        ports = free_ports(5 + 2 * len(names))
        return cls(
            postgres=ports[0],
            redis=ports[1],
            kafka=ports[2],
            gateway=ports[3],
            gateway_admin=ports[4],
            grpc=dict(zip(names, ports[5 : 5 + len(names)], strict=True)),
            metrics=dict(zip(names, ports[5 + len(names) :], strict=True)),
        )

    def to_environ(self) -> dict[str, str]:
        """The variables that make `cift up` in another process use exactly these ports."""
        environ = {
            env_name("embedded_postgres_port"): str(self.postgres),
            env_name("embedded_redis_port"): str(self.redis),
            env_name("embedded_kafka_port"): str(self.kafka),
            env_name("gateway_port"): str(self.gateway),
            env_name("gateway_admin_port"): str(self.gateway_admin),
        }
        for name, port in self.grpc.items():
            environ[env_name(f"{name}_addr")] = f"{LOOPBACK}:{port}"
        for name, port in self.metrics.items():
            environ[env_name(f"{name}_metrics_port")] = str(port)
        return environ


def _port_of(address: str) -> int:
    _, _, port = address.rpartition(":")
    try:
        return int(port)
    except ValueError:
        raise StackError(f"service address {address!r} has no port (expected host:port)") from None


def ensure_free(host: str, wanted: Mapping[str, int]) -> None:
    """Fail with one line naming the first taken port and who wanted it."""
    for purpose, port in wanted.items():
        if port_in_use(host, port):
            raise StackError(
                f"port {port} on {host} ({purpose}) is already in use; stop whatever "
                "listens there or choose another port"
            )
