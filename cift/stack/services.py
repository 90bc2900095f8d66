"""The service processes: their environment, their migrations, their start.

Every service is `python -m services.<name>` configured only through `CIFT_*`
variables rendered from the shared config declarations, so a service started by
the launcher, by a test or by Kubernetes reads exactly the same settings.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cift.runtime.config import SERVICE_PORTS, CommonConfig, to_environ
from cift.stack.components import SERVICE, Component, failure_detail
from cift.stack.errors import StackError
from cift.stack.ports import LOOPBACK
from cift.stack.probes import probe_grpc_health, wait_until_answers
from cift.stack.processes import Child, spawn
from cift.stack.tasks import run_all

SERVICE_NAMES: tuple[str, ...] = tuple(SERVICE_PORTS)

# The gRPC service each process registers (and reports in grpc.health.v1 besides "").
FULL_SERVICE_NAMES: Mapping[str, str] = {
    "auth": "cift.auth.v1.AuthService",
    "marketdata": "cift.marketdata.v1.MarketDataService",
    "execution": "cift.execution.v1.ExecutionService",
    "risk": "cift.risk.v1.RiskService",
    "backtest": "cift.backtest.v1.BacktestService",
}

_MIGRATE_TIMEOUT_S = 120.0


def service_argv(name: str, *command: str) -> list[str]:
    return [sys.executable, "-m", f"services.{name}", *command]


def service_environ(
    base: Mapping[str, str], common: CommonConfig, name: str, grpc_port: int, metrics_port: int
) -> dict[str, str]:
    """The whole environment of one service process: inherited, then its `CIFT_*` settings."""
    config = dataclasses.replace(
        common,
        service_name=name,
        grpc_host=LOOPBACK,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
    )
    return {**base, **to_environ(config)}


async def run_migrations(
    environs: Mapping[str, Mapping[str, str]],
    logs_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Apply every service's migrations (each its own schema, so all at once), saying
    which have finished as they do."""
    finished: list[str] = []
    started = time.monotonic()

    async def migrate(name: str) -> None:
        child = spawn(
            f"{name} migrations",
            service_argv(name, "migrate"),
            log_path=logs_dir / f"{name}-migrate.log",
            env=environs[name],
        )
        try:
            code = await child.wait(_MIGRATE_TIMEOUT_S)
        finally:
            # Also reached when a sibling's failure cancels this wait.
            await child.stop()
        if code is None:
            raise StackError(
                f"{name} migrations did not finish within {_MIGRATE_TIMEOUT_S:g} s",
                failure_detail(child),
            )
        if code != 0:
            last = (child.log_tail(1) or "no output").strip()
            raise StackError(
                f"{name} migrations failed (exit {code}): {last}", failure_detail(child)
            )
        finished.append(name)
        if progress is not None:
            elapsed_s = time.monotonic() - started
            progress(f"{name} migrated ({len(finished)}/{len(environs)}, {elapsed_s:.1f} s)")

    await run_all(migrate(name) for name in environs)


def spawn_service(
    name: str,
    environ: Mapping[str, str],
    logs_dir: Path,
    drain_s: float,
    argv: Sequence[str] | None = None,
) -> Child:
    """Start a service process (`argv` for another role of one, named `name` in its log)."""
    return spawn(
        name,
        argv or service_argv(name),
        log_path=logs_dir / f"{name}.log",
        env=environ,
        # The runtime drains in-flight calls for drain_s after SIGTERM; give it that and a bit.
        stop_timeout_s=drain_s + 3.0,
    )


def service_component(
    name: str, child_spawner: Callable[[], Child], address: str, timeout_s: float
) -> Component:
    """A service (or another role of one) as a supervised component: up when SERVING."""
    return Component(
        name=name,
        kind=SERVICE,
        launch=child_spawner,
        probe=lambda: probe_grpc_health(address),
        what=f"service {name} ({address})",
        start_timeout_s=timeout_s,
    )


async def wait_serving(child: Child, address: str, timeout_s: float) -> None:
    """Return once the service's overall health is SERVING; name it and show its log if not."""
    try:
        await wait_until_answers(
            f"service {child.name} ({address})",
            lambda: probe_grpc_health(address),
            timeout_s,
            still_running=lambda: child.exit_code is None,
        )
    except StackError as exc:
        raise StackError(exc.message, failure_detail(child)) from None


async def wait_all_serving(
    children: Sequence[Child], addresses: Mapping[str, str], timeout_s: float
) -> None:
    await run_all(wait_serving(child, addresses[child.name], timeout_s) for child in children)
