"""`cift`: run a whole CIFT Markets mesh on one machine and look after it.

    cift up [--fresh] [--home DIR] [--no-gateway] [--verbose]
    cift migrate [--home DIR]
    cift status [--home DIR]
    cift stop|start|restart COMPONENT [--home DIR]
    cift user create --email E [--display-name N] [--admin] [--home DIR]
    cift backtest --strategy S --data FILE [--param K=V ...] [--json] [--report OUT.html]

A problem the operator can fix (a taken port, an unreachable server, a missing
binary) ends a command with one line on stderr and a non-zero exit code; a
traceback here means a bug in the launcher. A password is only ever read from the
terminal or stdin, never from arguments or defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cift.backtest import cli as backtest_cli
from cift.runtime import kafka
from cift.runtime.config import ConfigError, env_name, load
from cift.stack import control
from cift.stack.errors import StackError, redact_url
from cift.stack.kafka_retention import BrokerMemoryGuard, MemoryPolicy, anonymous_bytes
from cift.stack.launcher import Stack, StackInfo, StackOptions, read_running
from cift.stack.logs import LogFollower
from cift.stack.probes import (
    ProbeFailed,
    probe_grpc_health,
    probe_http,
    probe_kafka,
    probe_postgres,
    probe_redis,
    probe_tcp,
)
from cift.stack.safeguards import missing_safeguards
from cift.stack.services import service_argv
from cift.stack.settings import StackConfig
from cift.stack.supervisor import CrashLoop, RestartPolicy, Supervisor

READY_LINE = "CIFT Markets is up. Press Ctrl-C to stop."


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _say(message: str) -> None:
    print(f"cift: {message}", flush=True)


def _environ(args: argparse.Namespace) -> dict[str, str]:
    """The process environment, with --home taking the place of CIFT_HOME."""
    environ = dict(os.environ)
    if getattr(args, "home", None):
        environ[env_name("home")] = args.home
    return environ


def _home(environ: Mapping[str, str]) -> Path:
    return Path(load(StackConfig, environ).home).expanduser().resolve()


# ---- cift up ---------------------------------------------------------------------------


def listening_table(info: StackInfo) -> str:
    """Where everything listens, as printed by `cift up`."""

    def origin(piece: str) -> str:
        return "embedded" if piece in info.embedded else "configured"

    rows = [
        ["PostgreSQL", redact_url(info.database_url), origin("postgres")],
        ["Redis", redact_url(info.redis_url), origin("redis")],
        ["Kafka", info.kafka_bootstrap, origin("kafka")],
    ]
    for name, address in info.grpc_addrs.items():
        rows.append([name, f"grpc://{address}", f"metrics {info.metrics_urls[name]}"])
    if info.gateway_url is not None:
        rows.append(["gateway", info.gateway_url, "REST, gRPC-Web and gRPC"])
        rows.append(["gateway admin", f"{info.gateway_admin_url}", "/ready, /stats/prometheus"])
    rows.append(["logs", str(info.home / "logs"), ""])
    return format_table(["component", "listens on", ""], rows)


async def _run_up(options: StackOptions, environ: Mapping[str, str], verbose: bool) -> int:
    stack = Stack(options, environ, progress=_say)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    follower = LogFollower(stack.logs_dir) if verbose else None
    following = asyncio.create_task(follower.run()) if follower else None
    try:
        return await _supervise(stack, stop_requested)
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following


async def _supervise(stack: Stack, stop_requested: asyncio.Event) -> int:
    starting = asyncio.create_task(stack.start())
    stopping = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        _say("interrupted while starting; stopping")
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StackError):
            await starting
        return 130
    info = starting.result()  # a StackError here has already stopped everything
    policy = RestartPolicy(first_delay_s=stack.config.restart_first_delay_s)
    supervisor = Supervisor(stack.components, _say, policy)
    controls = control.ControlServer(info.home, supervisor)
    await controls.start()
    print(listening_table(info), flush=True)
    for safeguard in missing_safeguards(
        stack.environ, info.embedded, info.database_url, info.redis_url
    ):
        _say(f"running without {safeguard}")
    print(READY_LINE, flush=True)
    supervising = asyncio.create_task(supervisor.run())
    guard = _broker_memory_guard(stack, info, supervisor)
    guarding = asyncio.create_task(guard.run()) if guard is not None else None
    await asyncio.wait({stopping, supervising}, return_when=asyncio.FIRST_COMPLETED)
    if guarding is not None:
        guarding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guarding
    code = 0
    if supervising.done():
        # Only a crash loop (or a bug) ends supervision on its own.
        try:
            supervising.result()
        except CrashLoop as exc:
            _say(f"{exc.message}; stopping the stack")
        code = 1
    else:
        supervising.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervising
        _say("stopping")
    stopping.cancel()
    await controls.close()
    await stack.stop()
    _say("stopped")
    return code


def _broker_memory_guard(
    stack: Stack, info: StackInfo, supervisor: Supervisor
) -> BrokerMemoryGuard | None:
    """The embedded broker's memory bound (cift/stack/kafka_retention.py), if it runs one."""
    limit_mib = stack.config.kafka_memory_limit_mib
    if "kafka" not in info.embedded or limit_mib <= 0:
        return None
    broker = supervisor.component("kafka")

    def memory() -> int | None:
        child = broker.child
        return None if child is None or not broker.running else anonymous_bytes(child.pid)

    return BrokerMemoryGuard(
        info.kafka_bootstrap,
        memory,
        lambda: supervisor.restart_component("kafka"),
        MemoryPolicy(limit_bytes=limit_mib * 2**20),
        _say,
    )


def _cmd_up(args: argparse.Namespace) -> int:
    environ = _environ(args)
    if args.otlp_endpoint:
        environ[env_name("otel_exporter")] = "otlp"
        environ[env_name("otel_endpoint")] = args.otlp_endpoint
    options = StackOptions(home=_home(environ), fresh=args.fresh, with_gateway=not args.no_gateway)
    return asyncio.run(_run_up(options, environ, args.verbose))


# ---- cift migrate ----------------------------------------------------------------------


def _cmd_migrate(args: argparse.Namespace) -> int:
    environ = _environ(args)
    home = _home(environ)
    running = read_running(home)
    if running is not None:
        # The running stack's PostgreSQL, never a second server on the same data.
        environ.update(running.env)
    stack = Stack(StackOptions(home=home), environ, progress=_say)
    asyncio.run(stack.migrate_database())
    return 0


# ---- cift status -----------------------------------------------------------------------


def expected_stack(environ: Mapping[str, str]) -> StackInfo:
    """Where a stack in this home listens: the running one's file, else the configured defaults."""
    home = _home(environ)
    running = read_running(home)
    if running is not None:
        return running
    return Stack(StackOptions(home=home), environ).describe(with_services=True, with_gateway=True)


def status_checks(info: StackInfo) -> list[tuple[str, str, Callable[[], Awaitable[Any]]]]:
    """(component, address, probe) for every part of `info`."""
    checks: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = [
        ("PostgreSQL", redact_url(info.database_url), lambda: probe_postgres(info.database_url)),
        ("Redis", redact_url(info.redis_url), lambda: probe_redis(info.redis_url)),
        ("Kafka", info.kafka_bootstrap, lambda: probe_kafka(info.kafka_bootstrap)),
    ]
    for name, address in info.grpc_addrs.items():
        metrics_url = info.metrics_urls[name]
        checks.append((name, f"grpc://{address}", _bind(probe_grpc_health, address)))
        checks.append((f"{name} metrics", metrics_url, _bind(probe_http, metrics_url)))
    if info.gateway_url is not None and info.gateway_admin_url is not None:
        host, _, port = info.gateway_url.removeprefix("http://").rpartition(":")
        checks.append(("gateway", info.gateway_url, _bind(probe_tcp, host, int(port))))
        ready_url = f"{info.gateway_admin_url}/ready"
        checks.append(("gateway admin", ready_url, _bind(probe_http, ready_url)))
    return checks


def _bind(probe: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: probe(*args)


# `cift status` row → the supervised component it shows.
_COMPONENT_OF_ROW = {"PostgreSQL": "postgres", "Redis": "redis", "Kafka": "kafka"}


def supervision_cells(name: str, supervised: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Restarts, last exit code and uptime of the component a status row shows."""
    figures = supervised.get(_COMPONENT_OF_ROW.get(name, name))
    if figures is None:
        return ["", "", ""]
    last_exit = figures["last_exit_code"]
    uptime_s = figures["uptime_s"]
    return [
        str(figures["restarts"]),
        "" if last_exit is None else str(last_exit),
        figures["state"] if uptime_s is None else f"{uptime_s:.0f} s",
    ]


async def _run_status(info: StackInfo) -> int:
    checks = status_checks(info)
    try:
        components = await control.request(info.home, "status", timeout_s=5.0)
    except StackError:
        components = []  # no cift up here (a configured stack, or nothing runs)
    supervised = {figures["name"]: figures for figures in components}

    async def outcome(probe: Callable[[], Awaitable[Any]]) -> str:
        try:
            await probe()
        except ProbeFailed as exc:
            return f"DOWN: {exc}"
        return "up"

    outcomes = await asyncio.gather(*(outcome(probe) for _, _, probe in checks))
    rows = [
        [name, address, *supervision_cells(name, supervised), state]
        for (name, address, _), state in zip(checks, outcomes, strict=True)
    ]
    headers = ["component", "address", "restarts", "last exit", "uptime", "state"]
    print(format_table(headers, rows))
    down = [row[0] for row in rows if row[-1] != "up"]
    if down:
        print(f"cift: down: {', '.join(down)}", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    return asyncio.run(_run_status(expected_stack(_environ(args))))


# ---- cift stop / start / restart ------------------------------------------------------


def _cmd_control(args: argparse.Namespace) -> int:
    home = _home(_environ(args))
    message = asyncio.run(control.request(home, args.command, args.component))
    _say(str(message))
    return 0


# ---- cift user create ------------------------------------------------------------------


def read_password(stdin: Any = None, prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Ask twice at a terminal; otherwise take the first line of stdin. Never a default."""
    stream = sys.stdin if stdin is None else stdin
    if stream.isatty():
        password = prompt("Password: ")
        if prompt("Repeat password: ") != password:
            raise StackError("the two passwords differ; nothing was created")
    else:
        password = stream.readline().rstrip("\r\n")
    if not password:
        raise StackError("a password is required: type it at the prompt or pipe it on stdin")
    return password


def _cmd_user_create(args: argparse.Namespace) -> int:
    environ = _environ(args)
    running = read_running(_home(environ))
    if running is not None:
        environ.update(running.env)
    password = read_password()
    argv = service_argv("auth", "create-user", "--email", args.email)
    if args.display_name:
        argv += ["--display-name", args.display_name]
    if args.admin:
        argv.append("--admin")
    # The password travels on the child's stdin only: not in argv (visible in ps), not in env.
    result = subprocess.run(argv, input=password + "\n", text=True, env=environ, check=False)
    return result.returncode


# ---- cift marketdata backfill -----------------------------------------------------------


def backfill_argv(args: argparse.Namespace) -> list[str]:
    """The market data service's own backfill command (the work happens in its package)."""
    return service_argv(
        "marketdata",
        "backfill",
        "--provider",
        args.provider,
        "--symbols",
        args.symbols,
        "--start",
        args.start,
        "--end",
        args.end,
        "--timeframe",
        args.timeframe,
        "--kinds",
        args.kinds,
    )


def _cmd_marketdata_backfill(args: argparse.Namespace) -> int:
    environ = _environ(args)
    running = read_running(_home(environ))
    if running is not None:
        # The running stack's PostgreSQL; provider keys come from this environment.
        environ.update(running.env)
    return subprocess.run(backfill_argv(args), env=environ, check=False).returncode


# ---- wiring ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cift", description="Run and inspect a CIFT Markets mesh."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_home(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--home", help="data and logs directory (default: CIFT_HOME or ./.cift)")
        return sub

    up = with_home(commands.add_parser("up", help="start the whole mesh; Ctrl-C stops it"))
    up.add_argument("--fresh", action="store_true", help="discard the embedded data first")
    up.add_argument("--no-gateway", action="store_true", help="do not start Envoy")
    up.add_argument("--verbose", action="store_true", help="show every process's log here")
    up.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export traces of the gateway and every service to this OTLP/gRPC collector "
        "(e.g. http://127.0.0.1:4317; sets CIFT_OTEL_EXPORTER=otlp and CIFT_OTEL_ENDPOINT)",
    )
    up.set_defaults(run=_cmd_up)

    migrate = with_home(commands.add_parser("migrate", help="apply every service's migrations"))
    migrate.set_defaults(run=_cmd_migrate)

    status = with_home(commands.add_parser("status", help="health of every component"))
    status.set_defaults(run=_cmd_status)

    for command, purpose in (
        ("stop", "stop one component of the running stack; the supervisor leaves it down"),
        ("start", "start a component stopped with `cift stop`"),
        ("restart", "stop and start one component of the running stack"),
    ):
        sub = with_home(commands.add_parser(command, help=purpose))
        sub.add_argument(
            "component", help="postgres, redis, kafka, a service (e.g. execution) or gateway"
        )
        sub.set_defaults(run=_cmd_control)

    user = commands.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    create = with_home(
        user_commands.add_parser("create", help="create a user (password from stdin)")
    )
    create.add_argument("--email", required=True, help="the user's email (their login)")
    create.add_argument("--display-name", default="", help="name shown in the user's profile")
    create.add_argument("--admin", action="store_true", help="grant the admin scope")
    create.set_defaults(run=_cmd_user_create)

    backtest_cli.add_parser(commands)
    marketdata = commands.add_parser("marketdata", help="market data operations")
    marketdata_commands = marketdata.add_subparsers(dest="marketdata_command", required=True)
    backfill = with_home(
        marketdata_commands.add_parser(
            "backfill",
            help="load historical bars and trades from Alpaca or Massive (resumable: "
            "run it again to finish)",
        )
    )
    backfill.add_argument("--provider", required=True, choices=("alpaca", "massive"))
    backfill.add_argument("--symbols", required=True, help="comma-separated, e.g. AAPL,MSFT")
    backfill.add_argument("--start", required=True, help="first day, YYYY-MM-DD (UTC)")
    backfill.add_argument("--end", required=True, help="last day, YYYY-MM-DD (UTC, inclusive)")
    backfill.add_argument("--timeframe", default="1Min", help="bar timeframe (default 1Min)")
    backfill.add_argument("--kinds", default="bars,trades", help="bars, trades or both")
    backfill.set_defaults(run=_cmd_marketdata_backfill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Probes report failures themselves; the Kafka client's own error logs would repeat them.
    kafka.CLIENT_LOG.setLevel(logging.CRITICAL)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except StackError as exc:
        print(f"cift: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"cift: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
