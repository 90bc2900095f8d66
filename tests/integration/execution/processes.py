"""Extra service processes beside the session's stack, each with a database of its own.

A test that must stop, restart or reconfigure a service starts its own copy as
`python -m services.<name>`, exactly as the launcher does, pointed at the stack's
infrastructure and other services, and stops it with SIGTERM. A test that must
reach such a copy through REST starts a gateway of its own (`own_gateway`): the
stack's Envoy, rendered from the same template, routing to the copies instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cift.runtime.config import CommonConfig, env_name
from cift.stack import gateway
from cift.stack.ports import free_ports
from cift.stack.probes import ProbeFailed, probe_http
from tests.integration.execution.exec_stack import Mesh, eventually

ROOT = Path(__file__).parents[3]


class ServiceProcess:
    """One `python -m services.<service>` child, restartable with the same settings."""

    def __init__(self, environ: dict[str, str], log: Path, service: str = "execution") -> None:
        self.environ = environ
        self.log = log
        self.service = service
        self.address = f"127.0.0.1:{environ[env_name('grpc_port')]}"
        self.child: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{self.service}",
                cwd=ROOT,
                env=self.environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                assert self.child is not None and self.child.returncode is None, (
                    self.log.read_text()
                )
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                up: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
                return up

            await eventually(serving, timeout_s=60, interval_s=0.2)

    async def stop(self) -> int:
        child, self.child = self.child, None
        if child is None:
            return 0
        child.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise


@asynccontextmanager
async def own_database(mesh: Mesh, prefix: str) -> AsyncIterator[str]:
    """The URL of a fresh database on the stack's server, dropped on leaving."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await mesh.db.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(mesh.info.database_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        await mesh.db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def service_environ(
    mesh: Mesh, service: str, database_url: str, settings: dict[str, str]
) -> dict[str, str]:
    """The environment of a `service` process on the stack, with `settings` (field names)."""
    grpc_port, metrics_port = free_ports(2)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    environ.update(mesh.info.env)
    environ.update(
        {
            env_name("service_name"): service,
            env_name("database_url"): database_url,
            env_name("grpc_host"): "127.0.0.1",
            env_name("grpc_port"): str(grpc_port),
            env_name("metrics_port"): str(metrics_port),
            env_name("drain_timeout_s"): "2",
        }
    )
    environ.update({env_name(name): value for name, value in settings.items()})
    return environ


@asynccontextmanager
async def own_gateway(mesh: Mesh, log_dir: Path, upstreams: dict[str, str]) -> AsyncIterator[str]:
    """The base URL of an Envoy gateway routing `upstreams` (service → "host:port") to
    the given processes and every other service to the stack's."""
    port, admin_port = free_ports(2)
    env = mesh.info.env
    params = gateway.GatewayParams(
        listener_host="127.0.0.1",
        listener_port=port,
        admin_host="127.0.0.1",
        admin_port=admin_port,
        upstreams={**mesh.info.grpc_addrs, **upstreams},
        # The stack's gateway compiled the descriptor set when it started.
        descriptor_path=str(mesh.info.home / "gateway" / "cift.pb"),
        jwt_issuer=env.get(env_name("jwt_issuer"), CommonConfig.jwt_issuer),
        jwt_audience=env.get(env_name("jwt_audience"), CommonConfig.jwt_audience),
    )
    config_path = log_dir / "envoy.yaml"
    config_path.write_text(gateway.render_gateway_config(params))
    argv = gateway.envoy_argv(gateway.envoy_binary(), config_path)
    child = gateway.spawn_envoy(argv, log_dir / "gateway.log")
    try:

        async def ready() -> bool:
            assert child.exit_code is None, child.log_tail()
            try:
                await probe_http(f"http://127.0.0.1:{admin_port}/ready")
            except ProbeFailed:
                return False
            return True

        await eventually(ready, timeout_s=60, interval_s=0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        await child.stop()
