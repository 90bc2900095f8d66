"""The one way a CIFT service process starts, serves and stops.

`run_service(spec)` gives every service the same life: logs and tracing are set
up, the gRPC server starts at once with health NOT_SERVING (so probes see the
process), dependencies (PostgreSQL, Redis, Kafka) are awaited and migrations
applied, the service wires its servicers and background tasks, and only then is
health SERVING. SIGTERM drains: health goes NOT_SERVING, new calls are refused,
in-flight calls get `drain_timeout_s`, background tasks stop (consumers commit),
and pools close. A dependency that stops answering flips health back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cift.runtime import config as config_module
from cift.runtime import db
from cift.runtime.config import CommonConfig, ConfigError
from cift.runtime.errors import DomainError, Unavailable
from cift.runtime.interceptors import CredentialVerifier, RpcPolicy, ServiceInterceptor
from cift.runtime.kafka import EventConsumer, EventProducer
from cift.runtime.logs import configure_logging
from cift.runtime.metrics import serve_metrics
from cift.runtime.outbox import OutboxRelay
from cift.runtime.tracing import configure_tracing

log = logging.getLogger(__name__)

C = TypeVar("C", bound=CommonConfig)


@dataclass
class ServiceSpec(Generic[C]):
    """What a service tells the runtime about itself."""

    name: str
    config_type: type[C]
    # Full gRPC service names registered (health reports each, reflection lists them).
    service_names: Sequence[str]
    # Method path ("/pkg.Service/Method") → who may call it; unlisted methods are refused.
    policies: Mapping[str, RpcPolicy]
    setup: Callable[[ServiceContext[C]], Awaitable[None]]
    migrations_dir: Path | None = None
    uses_redis: bool = False
    uses_kafka: bool = False
    relay_outbox: bool = False
    # Builds the credential verifier; default verifies JWTs against auth's JWKS.
    verifier_factory: Callable[[ServiceContext[C]], CredentialVerifier] | None = None


def scoped_methods(
    service: str, methods_by_scope: Mapping[str, Sequence[str]]
) -> dict[str, RpcPolicy]:
    """`policies` for a service whose methods each need one scope: {scope: method names}."""
    return {
        f"/{service}/{method}": RpcPolicy(scope=scope)
        for scope, methods in methods_by_scope.items()
        for method in methods
    }


def outbox_service(
    *,
    name: str,
    config_type: type[C],
    service: str,
    methods_by_scope: Mapping[str, Sequence[str]],
    setup: Callable[[ServiceContext[C]], Awaitable[None]],
    main_file: str,
) -> ServiceSpec[C]:
    """The spec of a service that owns a schema, uses Redis and publishes through its outbox.

    Its migrations sit in `migrations/` beside its `__main__.py` (`main_file`), and
    it serves the one gRPC service `service`.
    """
    return ServiceSpec(
        name=name,
        config_type=config_type,
        service_names=(service,),
        policies=scoped_methods(service, methods_by_scope),
        setup=setup,
        migrations_dir=Path(main_file).parent / "migrations",
        uses_redis=True,
        uses_kafka=True,
        relay_outbox=True,
    )


@dataclass
class ServiceContext(Generic[C]):
    """The resources a service's setup wires its servicers and tasks to."""

    config: C
    server: grpc.aio.Server
    _pool: asyncpg.Pool | None = None
    _redis: aioredis.Redis | None = None
    _producer: EventProducer | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _consumers: list[EventConsumer] = field(default_factory=list)
    _shutdown_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _health: Any = None
    _health_updates: set[asyncio.Task[None]] = field(default_factory=set)
    # Set when a background task ended by raising; `serve` then stops the process.
    crashed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("this service has no database pool")
        return self._pool

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("this service did not ask for Redis (ServiceSpec.uses_redis)")
        return self._redis

    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            raise RuntimeError("this service did not ask for Kafka (ServiceSpec.uses_kafka)")
        return self._producer

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background task for the life of the process; if it crashes, so does the process.

        These tasks (the outbox relay, consumers, the fill engine's feed) are what the
        service is for: one that died would leave a process that answers health checks
        and no longer does its work. Stopped, with a non-zero exit, it is started afresh
        by its supervisor (`cift up`, Kubernetes).
        """
        task = asyncio.create_task(coro, name=name)

        def _report(finished: asyncio.Task[None]) -> None:
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "background task %s crashed; stopping the service so that it restarts",
                    name,
                    exc_info=finished.exception(),
                )
                self.crashed.set()

        task.add_done_callback(_report)
        self._tasks.append(task)
        return task

    def consumer(self, group: str, topics: Sequence[str], **kwargs: Any) -> EventConsumer:
        """A consumer-group member that is started now and stopped (committing) on drain."""
        consumer = EventConsumer(
            self.config.kafka_bootstrap,
            self.config.service_name,
            group,
            topics,
            session_timeout_ms=self.config.kafka_session_timeout_ms,
            **kwargs,
        )
        self._consumers.append(consumer)
        return consumer

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._shutdown_hooks.append(hook)

    def report_health(self, component: str, serving: bool) -> None:
        """Publish a component's own health (e.g. a provider feed) under its name in
        `grpc.health.v1.Health`, apart from the service's: the API keeps serving while
        the component is down."""
        if self._health is None:
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        task = asyncio.create_task(self._health.set(component, status))
        self._health_updates.add(task)
        task.add_done_callback(self._health_updates.discard)


# Young-generation size before the cyclic GC runs (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running, allocation-heavy service.

    A consumed Kafka batch allocates tens of thousands of short-lived objects
    (events, messages, row tuples): with the default threshold the collector runs
    every 700 allocations and rescans everything still alive, which measured ~20 %
    of the tick ingest's CPU. Freezing what startup built (modules, config, pools)
    keeps it out of every later scan; the larger young generation collects the same
    garbage, less often.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def _retry(what: str, attempt: Callable[[], Awaitable[Any]], deadline: float) -> Any:
    delay_s = 0.2
    while True:
        try:
            return await attempt()
        except (OSError, asyncpg.PostgresError, ConnectionError, TimeoutError, Exception) as exc:
            if time.monotonic() + delay_s > deadline:
                raise Unavailable(f"{what} did not answer: {exc}") from None
            log.info("waiting for %s: %s", what, exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


class ServiceRuntime(Generic[C]):
    """Owns one service process's server and resources from start to drain."""

    def __init__(self, spec: ServiceSpec[C], config: C) -> None:
        self.spec = spec
        self.config = config
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.verifier: CredentialVerifier | None = None
        self.server = grpc.aio.server(
            interceptors=[
                ServiceInterceptor(
                    spec.name,
                    spec.policies,
                    self._current_verifier,
                    trust_gateway=config.trust_gateway_identity,
                )
            ],
            options=[
                ("grpc.max_receive_message_length", 4 * 1024 * 1024),
                # Without this a second process could bind the same port and steal calls.
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
                # grpc.aio accepts calls one at a time, so a burst queues in the core; past
                # its default of 1,000 waiting calls it cancels some (CANCELLED, nothing
                # logged): 305 of 2,500 concurrent calls here. Queue them instead.
                ("grpc.server.max_pending_requests", 20_000),
                ("grpc.server.max_pending_requests_hard_limit", 40_000),
            ],
        )
        self.context: ServiceContext[C] = ServiceContext(
            config=config, server=self.server, _health=self.health
        )
        self._stopped = asyncio.Event()

    def _current_verifier(self) -> CredentialVerifier | None:
        # Built on first use so a service starts (and reports health) before auth
        # is up; the JWKS itself is fetched lazily by the verifier.
        if self.verifier is None and self.spec.verifier_factory is None:
            from cift.runtime.tokens import JwksVerifier

            self.verifier = JwksVerifier(self.config)
        return self.verifier

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.spec.service_names):
            await self.health.set(name, status)

    async def start(self) -> None:
        """Bind, connect dependencies, migrate, wire the service, then report SERVING."""
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *self.spec.service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        address = f"{self.config.grpc_host}:{self.config.grpc_port}"
        try:
            bound = self.server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise Unavailable(
                f"cannot listen on {address}: the port is taken or the address is invalid"
            )
        await self._set_serving(False)
        await self.server.start()
        serve_metrics(self.config.grpc_host, self.config.metrics_port)
        log.info("listening", extra={"grpc": address, "metrics_port": self.config.metrics_port})

        deadline = time.monotonic() + self.config.dependency_timeout_s
        if self.spec.migrations_dir is not None:
            migrations = db.load_migrations(self.spec.migrations_dir)
            await _retry(
                "PostgreSQL",
                lambda: db.migrate_dsn(self.config.database_url, self.spec.name, migrations),
                deadline,
            )
            self.context._pool = await _retry(
                "PostgreSQL",
                lambda: db.create_pool(
                    self.config.database_url,
                    self.spec.name,
                    min_size=self.config.db_pool_min,
                    max_size=self.config.db_pool_max,
                ),
                deadline,
            )
        if self.spec.uses_redis:
            client = aioredis.from_url(self.config.redis_url, decode_responses=False)
            await _retry("Redis", client.ping, deadline)
            self.context._redis = client
        if self.spec.uses_kafka:
            producer = EventProducer(self.config.kafka_bootstrap, self.spec.name)
            await _retry("Kafka", producer.start, deadline)
            self.context._producer = producer
        if self.spec.relay_outbox:
            relay = OutboxRelay(self.context.pool, self.context.producer)
            self.context.spawn("outbox-relay", relay.run())

        await self.spec.setup(self.context)
        # Joined together: the broker holds each new group's first join ~5 s.
        await asyncio.gather(
            *(
                _retry(f"Kafka consumer {consumer.group}", consumer.start, deadline)
                for consumer in self.context._consumers
            )
        )
        if self.spec.verifier_factory is not None:
            self.verifier = self.spec.verifier_factory(self.context)
        self.context.spawn("dependency-watch", self._watch_dependencies())
        tune_gc()
        await self._set_serving(True)
        log.info("serving", extra={"service": self.spec.name})

    async def _dependencies_answer(self) -> bool:
        try:
            if self.context._pool is not None:
                async with asyncio.timeout(2.0):
                    await self.context._pool.fetchval("SELECT 1")
            if self.context._redis is not None:
                async with asyncio.timeout(2.0):
                    await self.context._redis.ping()
        except Exception:
            return False
        return True

    async def _watch_dependencies(self) -> None:
        serving = True
        while True:
            await asyncio.sleep(5.0)
            healthy = await self._dependencies_answer()
            if healthy != serving:
                log.warning("dependencies %s", "recovered" if healthy else "unreachable")
                await self._set_serving(healthy)
                serving = healthy

    async def drain(self) -> None:
        """Stop accepting, finish in-flight calls, stop tasks, commit offsets, close pools."""
        log.info("draining", extra={"grace_s": self.config.drain_timeout_s})
        await self._set_serving(False)
        await self.server.stop(grace=self.config.drain_timeout_s)
        for task in self.context._tasks:
            task.cancel()
        await asyncio.gather(*self.context._tasks, return_exceptions=True)
        for consumer in self.context._consumers:
            with contextlib.suppress(Exception):
                await consumer.stop()
        for hook in reversed(self.context._shutdown_hooks):
            with contextlib.suppress(Exception):
                await hook()
        if self.context._producer is not None:
            with contextlib.suppress(Exception):
                await self.context._producer.stop()
        if self.context._redis is not None:
            await self.context._redis.aclose()
        if self.context._pool is not None:
            await self.context._pool.close()
        self._stopped.set()


async def serve(spec: ServiceSpec[C], config: C) -> int:
    """Serve until SIGTERM/SIGINT (exit status 0) or a background task crashed (1)."""
    runtime = ServiceRuntime(spec, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    starting = asyncio.create_task(runtime.start())
    stopper = asyncio.create_task(stop.wait())
    crash = asyncio.create_task(runtime.context.crashed.wait())
    done, _ = await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    try:
        if starting in done:
            starting.result()
            await asyncio.wait({stopper, crash}, return_when=asyncio.FIRST_COMPLETED)
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    finally:
        stopper.cancel()
        crash.cancel()
        await runtime.drain()
    return 1 if runtime.context.crashed.is_set() and not stop.is_set() else 0


async def _as_coroutine(awaitable: Awaitable[int]) -> int:
    return await awaitable


def _install_event_loop() -> None:
    # uvloop cuts per-call overhead of grpc.aio and asyncpg noticeably; fall back quietly.
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@dataclass(frozen=True)
class Command(Generic[C]):
    """An extra `python -m services.<name> <command>` (e.g. auth's create-user)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[C, argparse.Namespace], Awaitable[int]]


def run_service(
    spec: ServiceSpec[C],
    argv: Sequence[str] | None = None,
    commands: Mapping[str, Command[C]] | None = None,
) -> int:
    """Entry point of `python -m services.<name> [serve|migrate|<command>]`."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{spec.name}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC service (default)")
    sub.add_parser("migrate", help="apply this service's SQL migrations and exit")
    for name, command in (commands or {}).items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    args = parser.parse_args(argv)
    try:
        config = config_module.load_service(spec.config_type, spec.name)
    except ConfigError as exc:
        print(f"cift-{spec.name}: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(spec.name, config.log_level, config.log_format)
    configure_tracing(spec.name, config.otel_exporter, config.otel_endpoint)
    _install_event_loop()
    chosen = args.command or "serve"
    try:
        if chosen == "serve":
            return asyncio.run(serve(spec, config))
        if chosen == "migrate":
            if spec.migrations_dir is not None:
                applied = asyncio.run(
                    db.migrate_dsn(
                        config.database_url, spec.name, db.load_migrations(spec.migrations_dir)
                    )
                )
                print(f"{spec.name}: {len(applied)} migration(s) applied")
            return 0
        return asyncio.run(_as_coroutine((commands or {})[chosen].run(config, args)))
    except DomainError as exc:
        print(f"cift-{spec.name}: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cift-{spec.name}: {exc}", file=sys.stderr)
        return 1
