"""The launcher behind `cift up` and the test fixtures: the whole mesh as one process tree.

Start order: infrastructure (embedded where no address is configured) → database
and topics → each service's migrations → the services, until every health
check says SERVING → the gateway. Stop order is the reverse. While a stack runs,
its home holds a lock (one launcher per home) and `stack.json`, which tells
`cift status` and `cift user create` where everything listens.

The launcher never leaves a child behind: a failed start stops what already runs
before the error reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cift.runtime.config import CommonConfig, env_name, load
from cift.stack import gateway, infrastructure, kafka_broker, postgres, redis_server, services
from cift.stack.components import GATEWAY, Component, start_together, stop_in_reverse
from cift.stack.errors import StackError
from cift.stack.ports import LOOPBACK, PortPlan, ensure_free, free_ports
from cift.stack.probes import (
    probe_http,
    probe_tcp,
)
from cift.stack.processes import Child
from cift.stack.settings import StackConfig, is_configured, with_stack_defaults
from cift.stack.supervisor import RestartPolicy
from cift.stack.tasks import run_all

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"

# Infrastructure piece → the common setting that, when given, replaces the embedded one.
INFRA_SETTINGS: Mapping[str, str] = {
    "postgres": "database_url",
    "redis": "redis_url",
    "kafka": "kafka_bootstrap",
}
INFRA: tuple[str, ...] = tuple(INFRA_SETTINGS)


@dataclass(frozen=True)
class StackOptions:
    """What to run and where; the CLI flags and the test fixtures map onto these."""

    home: Path
    # Delete the embedded data under `home` before starting.
    fresh: bool = False
    with_services: bool = True
    with_gateway: bool = True
    # Ports from the kernel instead of the documented defaults (tests).
    free_ports: bool = False
    # fsync PostgreSQL's data; off only for data nobody keeps (tests).
    durable: bool = True


@dataclass(frozen=True)
class StackInfo:
    """Where a running stack listens; what `cift up` prints and the fixtures yield."""

    home: Path
    database_url: str
    redis_url: str
    kafka_bootstrap: str
    # Which infrastructure pieces this launcher started itself (the rest were configured).
    embedded: tuple[str, ...]
    # service name → "127.0.0.1:port" of its gRPC server (empty without services).
    grpc_addrs: Mapping[str, str] = field(default_factory=dict)
    # service name → "http://127.0.0.1:port/metrics".
    metrics_urls: Mapping[str, str] = field(default_factory=dict)
    gateway_url: str | None = None
    gateway_admin_url: str | None = None
    # The CIFT_* variables that point a process (a test, a CLI command) at this stack.
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["home"] = str(self.home)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        data: dict[str, Any] = json.loads(text)
        data["home"] = Path(data["home"])
        data["embedded"] = tuple(data["embedded"])
        return cls(**data)


def read_running(home: Path) -> StackInfo | None:
    """The stack a live launcher runs in `home`, or None.

    A state file left by a killed launcher is ignored: only a held lock proves it is live.
    """
    state = home / STATE_FILE
    if not state.is_file():
        return None
    try:
        with (home / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return StackInfo.from_json(state.read_text())
    except OSError:
        return None
    return None


def _purpose(what: str, setting_name: str) -> str:
    return f"{what}, {env_name(setting_name)}"


class Stack:
    """One stack's processes, started phase by phase and stopped in reverse."""

    def __init__(
        self,
        options: StackOptions,
        environ: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.environ = with_stack_defaults(os.environ if environ is None else environ)
        self.config = load(StackConfig, self.environ)
        self.ports = PortPlan.free() if options.free_ports else PortPlan.from_config(self.config)
        self.home = options.home.expanduser().resolve()
        self.logs_dir = self.home / "logs"
        self.embedded = tuple(
            piece
            for piece, setting_name in INFRA_SETTINGS.items()
            if not is_configured(self.environ, setting_name)
        )
        self.database_url = (
            postgres.database_url(self.ports.postgres)
            if "postgres" in self.embedded
            else self.config.database_url
        )
        self.redis_url = (
            redis_server.redis_url(self.ports.redis)
            if "redis" in self.embedded
            else self.config.redis_url
        )
        self.kafka_bootstrap = (
            kafka_broker.bootstrap_address(self.ports.kafka)
            if "kafka" in self.embedded
            else self.config.kafka_bootstrap
        )
        self.grpc_addrs = {name: f"{LOOPBACK}:{port}" for name, port in self.ports.grpc.items()}
        # Extra members of market data's ingest group: (gRPC health port, metrics port).
        if self.config.marketdata_ingest_processes < 1:
            raise StackError(
                "CIFT_MARKETDATA_INGEST_PROCESSES must be at least 1 (the market data service)"
            )
        if not 0 < self.config.restart_first_delay_s <= RestartPolicy.max_delay_s:
            raise StackError(
                "CIFT_RESTART_FIRST_DELAY_S must be above 0 and at most "
                f"{RestartPolicy.max_delay_s:g} s"
            )
        extra = self.config.marketdata_ingest_processes - 1
        worker_ports = iter(free_ports(2 * extra))
        self.ingest_workers = {
            f"marketdata-ingest-{n}": (next(worker_ports), next(worker_ports))
            for n in range(1, extra + 1)
        }
        self._progress = progress or (lambda _message: None)
        # Components in start order, one group per phase; stopped group by group in reverse.
        self._groups: list[list[Component]] = []
        self._lock: int | None = None

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> StackInfo:
        """Bring up everything the options ask for; on any failure stop what runs, then raise."""
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> StackInfo:
        started = time.monotonic()
        with_services = self.options.with_services
        with_gateway = with_services and self.options.with_gateway
        self._claim_home()
        # Each run starts fresh logs; restarts within the run append to them.
        for old_log in self.logs_dir.glob("*.log"):
            old_log.unlink()
        self._preflight(INFRA, with_services, with_gateway)
        await self.start_infrastructure(INFRA)
        if with_services:
            await self.migrate()
            await self.start_services()
        if with_gateway:
            await self.start_gateway()
        info = self.describe(with_services, with_gateway)
        (self.home / STATE_FILE).write_text(info.to_json())
        self._progress(f"stack up in {time.monotonic() - started:.1f} s")
        return info

    async def migrate_database(self) -> None:
        """Apply every service's migrations, starting the embedded PostgreSQL only if needed."""
        try:
            if "postgres" in self.embedded:
                self._claim_home()
                self._preflight(("postgres",), with_services=False, with_gateway=False)
            else:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
            await self.start_infrastructure(("postgres",))
            await self.migrate()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop every child, newest first; safe to call twice and after a failed start."""
        groups, self._groups = self._groups, []
        await stop_in_reverse(groups)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                (self.home / STATE_FILE).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None

    @property
    def components(self) -> list[Component]:
        """Every supervised process of the stack, in start order."""
        return [component for group in self._groups for component in group]

    # ---- phases -----------------------------------------------------------------------

    def _claim_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StackError(f"cannot use {self.home} as CIFT_HOME: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackError(
                f"another cift launcher already runs with home {self.home}; stop it or use --home"
            ) from None
        self._lock = fd
        if self.options.fresh:
            for stale in ("postgres", "redis", "logs", "gateway"):
                shutil.rmtree(self.home / stale, ignore_errors=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def _preflight(self, pieces: Sequence[str], with_services: bool, with_gateway: bool) -> None:
        """Find every binary and check every port before starting anything."""
        # purpose (with the variable that moves it) → port
        wanted: dict[str, int] = {}
        embedded = [piece for piece in pieces if piece in self.embedded]
        if "postgres" in embedded:
            postgres.binaries_dir()
            wanted[_purpose("embedded PostgreSQL", "embedded_postgres_port")] = self.ports.postgres
        if "redis" in embedded:
            redis_server.redis_binary()
            wanted[_purpose("embedded Redis", "embedded_redis_port")] = self.ports.redis
        if "kafka" in embedded:
            kafka_broker.broker_binary()
            wanted[_purpose("embedded Kafka", "embedded_kafka_port")] = self.ports.kafka
        if with_services:
            for name in services.SERVICE_NAMES:
                wanted[_purpose(f"{name} gRPC", f"{name}_addr")] = self.ports.grpc[name]
                wanted[_purpose(f"{name} metrics", f"{name}_metrics_port")] = self.ports.metrics[
                    name
                ]
        if with_gateway:
            gateway.envoy_binary(self.config.envoy_bin)
            wanted[_purpose("gateway admin", "gateway_admin_port")] = self.ports.gateway_admin
        ensure_free(LOOPBACK, wanted)
        if with_gateway:
            gateway_port = {_purpose("gateway", "gateway_port"): self.ports.gateway}
            ensure_free(self.config.gateway_host, gateway_port)

    async def start_infrastructure(self, pieces: Sequence[str]) -> None:
        """Embedded servers where none is configured, configured ones probed; database and topics."""
        started = time.monotonic()
        timeout_s = self.config.dependency_timeout_s
        known = infrastructure.servers(
            self.database_url, self.redis_url, self.kafka_bootstrap, self.config.topic_partitions
        )
        launchers = await self._infrastructure_launchers()
        group = [
            infrastructure.embedded(piece, known[piece], launchers[piece], timeout_s)
            for piece in pieces
            if piece in self.embedded
        ]
        self._groups.append(group)
        configured = [
            infrastructure.wait_and_prepare(known[piece], timeout_s)
            for piece in pieces
            if piece not in self.embedded
        ]
        await run_all([*(component.start() for component in group), *configured])
        embedded = [piece for piece in pieces if piece in self.embedded]
        self._progress(
            f"infrastructure ready in {time.monotonic() - started:.1f} s "
            f"(embedded: {', '.join(embedded) or 'none'})"
        )

    async def _infrastructure_launchers(self) -> dict[str, Callable[[], Child]]:
        """How to start each embedded piece (PostgreSQL's data directory is prepared first)."""
        logs, ports = self.logs_dir, self.ports
        launchers: dict[str, Callable[[], Child]] = {
            "redis": lambda: redis_server.spawn_redis(
                ports.redis, self.home / "redis", logs / "redis.log"
            ),
            "kafka": lambda: kafka_broker.spawn_broker(ports.kafka, logs / "kafka.log"),
        }
        if "postgres" in self.embedded:
            data_dir = self.home / "postgres"
            user = await asyncio.to_thread(postgres.prepare_data_dir, data_dir)
            launchers["postgres"] = lambda: postgres.spawn_postgres(
                data_dir,
                ports.postgres,
                logs / "postgres.log",
                user=user,
                durable=self.options.durable,
                synchronous_commit=self.config.embedded_postgres_synchronous_commit,
            )
        return launchers

    def _kafka_session_override(self) -> int | None:
        """The consumer-group session fit for the embedded broker, unless one is configured."""
        if "kafka" in self.embedded and env_name("kafka_session_timeout_ms") not in self.environ:
            return kafka_broker.SESSION_TIMEOUT_MS
        return None

    def _common_config(self) -> CommonConfig:
        """The settings every service shares, pointing at this stack."""
        overrides: dict[str, Any] = {}
        if (session_ms := self._kafka_session_override()) is not None:
            overrides["kafka_session_timeout_ms"] = session_ms
        return load(
            CommonConfig,
            self.environ,
            **overrides,
            database_url=self.database_url,
            redis_url=self.redis_url,
            kafka_bootstrap=self.kafka_bootstrap,
            auth_addr=self.grpc_addrs["auth"],
            marketdata_addr=self.grpc_addrs["marketdata"],
            execution_addr=self.grpc_addrs["execution"],
            risk_addr=self.grpc_addrs["risk"],
            backtest_addr=self.grpc_addrs["backtest"],
        )

    def service_environs(self) -> dict[str, dict[str, str]]:
        common = self._common_config()
        return {
            name: services.service_environ(
                self.environ, common, name, self.ports.grpc[name], self.ports.metrics[name]
            )
            for name in services.SERVICE_NAMES
        }

    async def migrate(self) -> None:
        started = time.monotonic()
        await services.run_migrations(self.service_environs(), self.logs_dir, self._progress)
        self._progress(f"migrations applied in {time.monotonic() - started:.1f} s")

    async def start_services(self) -> None:
        started = time.monotonic()
        drain_s = self.config.drain_timeout_s
        timeout_s = self.config.service_start_timeout_s
        logs = self.logs_dir
        group = [
            services.service_component(
                name,
                functools.partial(services.spawn_service, name, environ, logs, drain_s),
                self.grpc_addrs[name],
                timeout_s,
            )
            for name, environ in self.service_environs().items()
        ]
        common = self._common_config()
        for name, (grpc_port, metrics_port) in self.ingest_workers.items():
            environ = services.service_environ(
                self.environ, common, "marketdata", grpc_port, metrics_port
            )
            argv = services.service_argv("marketdata", "ingest")
            spawner = functools.partial(services.spawn_service, name, environ, logs, drain_s, argv)
            address = f"{LOOPBACK}:{grpc_port}"
            group.append(services.service_component(name, spawner, address, timeout_s))
        self._groups.append(group)
        await start_together(group)
        self._progress(f"services serving in {time.monotonic() - started:.1f} s")

    async def start_gateway(self) -> None:
        started = time.monotonic()
        gateway_dir = self.home / "gateway"
        descriptor = await asyncio.to_thread(gateway.build_descriptor, gateway_dir / "cift.pb")
        web_root = gateway.built_web_root()
        if web_root is None:
            self._progress(
                f"the dashboard is not built ({gateway.WEB_DIST}); serving the API only "
                "(`make setup` builds it)"
            )
        params = gateway.GatewayParams(
            listener_host=self.config.gateway_host,
            listener_port=self.ports.gateway,
            admin_host=LOOPBACK,
            admin_port=self.ports.gateway_admin,
            upstreams=self.grpc_addrs,
            descriptor_path=str(descriptor),
            jwt_issuer=self.config.jwt_issuer,
            jwt_audience=self.config.jwt_audience,
            otlp_collector=gateway.otlp_collector(self._common_config()),
            cors_origins=self.config.gateway_cors_origins
            or gateway.own_origins(self.config.gateway_host, self.ports.gateway),
            trusted_proxy_hops=self.config.gateway_trusted_proxy_hops,
            web_root=str(web_root or ""),
        )
        config_path = gateway_dir / "envoy.yaml"
        config_path.write_text(gateway.render_gateway_config(params))
        argv = gateway.envoy_argv(gateway.envoy_binary(self.config.envoy_bin), config_path)
        admin_ready = f"http://{LOOPBACK}:{self.ports.gateway_admin}/ready"
        host, port = self.config.gateway_host, self.ports.gateway

        async def answers() -> None:
            await probe_http(admin_ready)
            await probe_tcp(host, port)

        component = Component(
            name="gateway",
            kind=GATEWAY,
            launch=lambda: gateway.spawn_envoy(argv, self.logs_dir / "gateway.log"),
            probe=answers,
            what=f"gateway at {host}:{port} (admin {admin_ready})",
            start_timeout_s=self.config.dependency_timeout_s,
        )
        self._groups.append([component])
        await component.start()
        self._progress(f"gateway ready in {time.monotonic() - started:.1f} s")
        if web_root is not None:
            self._progress(f"dashboard at http://{host}:{port}/")

    def describe(self, with_services: bool, with_gateway: bool) -> StackInfo:
        """Where this stack listens (or will, once started) with these parts."""
        env = {
            env_name("home"): str(self.home),
            env_name("database_url"): self.database_url,
            env_name("redis_url"): self.redis_url,
            env_name("kafka_bootstrap"): self.kafka_bootstrap,
        }
        # A process pointed at this stack (a CLI, an extra ingest member, a test's own
        # service) joins the embedded broker's groups as quickly as the stack's services.
        if (session_ms := self._kafka_session_override()) is not None:
            env[env_name("kafka_session_timeout_ms")] = str(session_ms)
        grpc_addrs: dict[str, str] = {}
        metrics_urls: dict[str, str] = {}
        gateway_url = gateway_admin_url = None
        if with_services:
            grpc_addrs = dict(self.grpc_addrs)
            metrics_ports = dict(self.ports.metrics)
            metrics_ports.update({name: ports[1] for name, ports in self.ingest_workers.items()})
            metrics_urls = {
                name: f"http://{LOOPBACK}:{port}/metrics" for name, port in metrics_ports.items()
            }
            env.update({env_name(f"{name}_addr"): addr for name, addr in grpc_addrs.items()})
            if with_gateway:
                gateway_url = f"http://{self.config.gateway_host}:{self.ports.gateway}"
                gateway_admin_url = f"http://{LOOPBACK}:{self.ports.gateway_admin}"
        return StackInfo(
            home=self.home,
            database_url=self.database_url,
            redis_url=self.redis_url,
            kafka_bootstrap=self.kafka_bootstrap,
            embedded=self.embedded,
            grpc_addrs=grpc_addrs,
            metrics_urls=metrics_urls,
            gateway_url=gateway_url,
            gateway_admin_url=gateway_admin_url,
            env=env,
        )
