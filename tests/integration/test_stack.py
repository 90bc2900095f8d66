"""The real `cift up` and the session fixtures: everything answers, nothing is left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from cift.runtime.config import env_name, load
from cift.runtime.kafka import TOPICS
from cift.stack import control
from cift.stack.cli import READY_LINE
from cift.stack.errors import StackError
from cift.stack.launcher import Stack, StackInfo, StackOptions
from cift.stack.ports import PortPlan
from cift.stack.probes import probe_grpc_health, probe_http, probe_kafka
from cift.stack.services import FULL_SERVICE_NAMES, SERVICE_NAMES
from cift.stack.settings import StackConfig
from tests.cift_process import cift_command, cift_up
from tests.e2e.e2e_client import Json, Rest, market_order, register_and_login

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 90.0


def descendants(pid: int) -> list[tuple[int, float, str]]:
    """(pid, start time, name) of every process under `pid`; start time guards against pid reuse."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found.append((child.pid, child.create_time(), child.name()))
        except psutil.NoSuchProcess:
            continue
    return found


def command_line(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return ""


def still_running(processes: list[tuple[int, float, str]]) -> list[str]:
    alive = []
    for pid, created, name in processes:
        try:
            process = psutil.Process(pid)
            if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{name} ({pid})")
        except psutil.NoSuchProcess:
            continue
    return alive


async def wait_all_gone(processes: list[tuple[int, float, str]], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = still_running(processes)
        if not alive or time.monotonic() > deadline:
            return alive
        await asyncio.sleep(0.1)


def http_get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


async def assert_every_service_serving(info: StackInfo) -> None:
    assert set(info.grpc_addrs) == set(SERVICE_NAMES)
    for name, address in info.grpc_addrs.items():
        await probe_grpc_health(address)
        await probe_grpc_health(address, FULL_SERVICE_NAMES[name])
        metrics = await probe_http(info.metrics_urls[name])
        assert "# TYPE" in metrics, f"{name} /metrics is not Prometheus text"


async def assert_gateway_transcodes_and_routes(gateway_url: str, admin_url: str) -> None:
    assert (await probe_http(f"{admin_url}/ready")).strip() == "LIVE"
    assert "envoy_cluster_upstream_cx_total" in await probe_http(f"{admin_url}/stats/prometheus")
    # Authorization runs before REST translation: without a credential even an unknown
    # path is 401, so nothing about the route table leaks to anonymous callers.
    status, _, body = await asyncio.to_thread(http_get, f"{gateway_url}/v1/no-such-route")
    assert status == 401, body
    # A public route needs no credential and is transcoded to the auth service.
    status, headers, body = await asyncio.to_thread(http_get, f"{gateway_url}/v1/auth/jwks")
    assert status == 200, body
    assert headers["content-type"].startswith("application/json"), (status, body)
    assert '"kty":"OKP"' in body.replace(" ", "")
    status, headers, _ = await asyncio.to_thread(
        http_get,
        f"{gateway_url}/cift.marketdata.v1.MarketDataService/GetClock",
        {
            "origin": gateway_url,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-grpc-web,content-type",
        },
        "OPTIONS",
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == gateway_url
    assert "grpc-status" in headers["access-control-expose-headers"]


async def assert_a_first_market_order_fills_at_a_live_quote(
    gateway_url: str, launched_ns: int
) -> None:
    """The README's first order, placed as soon as 'is up' shows, fills at a quote of the
    live market: never at one of the simulated hour's (one filled 55 minutes old, when the
    past went out through the ticks topic)."""

    def first_order() -> Json:
        rest = Rest(gateway_url)
        token = register_and_login(rest, "first").access_token
        placed = rest.ok("POST", "/v1/orders", token=token, json=market_order(symbol="AAPL"))
        assert placed["order"]["status"] == "ORDER_STATUS_FILLED", placed
        return rest.ok("GET", f"/v1/orders/{placed['order']['id']}", token=token)

    (fill,) = (await asyncio.to_thread(first_order))["fills"]
    stamp = Timestamp()
    stamp.FromJsonString(fill["explanation"]["tickTimestamp"])
    assert stamp.ToNanoseconds() >= launched_ns, fill


async def assert_an_hour_of_minute_bars(database_url: str) -> None:
    """A new stack's simulated hour, stored before market data serves: the dashboard's
    first chart has bars to draw."""
    conn = await asyncpg.connect(database_url)
    try:
        first = await conn.fetchval(
            "SELECT min(start_ns) FROM marketdata.bars WHERE symbol = 'AAPL' AND timeframe = '1Min'"
        )
    finally:
        await conn.close()
    assert first is not None and first < time.time_ns() - 55 * 60 * 10**9, first


async def test_cift_up_answers_every_check_and_sigint_leaves_no_process(
    cift_up_environ: dict[str, str],
) -> None:
    ports = PortPlan.from_config(load(StackConfig, cift_up_environ))
    launched_ns = time.time_ns()
    async with cift_up(cift_up_environ) as running:
        await running.read_until(READY_LINE, START_TIMEOUT_S)
        started_in_s = time.monotonic() - running.started_s
        # A bare laptop stack says what it runs without, one line each.
        without = [line for line in running.output if line.startswith("cift: running without")]
        assert len(without) == 5, running.output
        tree = descendants(running.process.pid)
        names = {name for _, _, name in tree}
        assert {"postgres", "envoy"} <= names, names
        assert len([n for n in names if n.startswith("redis-server")]) == 1, names

        info = StackInfo.from_json((Path(cift_up_environ["CIFT_HOME"]) / "stack.json").read_text())
        assert info.gateway_url == f"http://127.0.0.1:{ports.gateway}"
        assert info.embedded == ("postgres", "redis", "kafka")
        await assert_a_first_market_order_fills_at_a_live_quote(info.gateway_url, launched_ns)
        await assert_an_hour_of_minute_bars(info.database_url)
        await assert_every_service_serving(info)
        assert info.gateway_admin_url is not None
        await assert_gateway_transcodes_and_routes(info.gateway_url, info.gateway_admin_url)
        assert set(TOPICS) <= set(await probe_kafka(info.kafka_bootstrap))

        status = await asyncio.create_subprocess_exec(
            cift_command(), "status", env=cift_up_environ, stdout=asyncio.subprocess.PIPE
        )
        status_out, _ = await status.communicate()
        assert status.returncode == 0, status_out.decode()

        running.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(running.process.wait(), 30) == 0
        output = await running.rest_of_output(5)
    assert output.splitlines()[-1] == "cift: stopped"
    assert await wait_all_gone(tree, 5) == []
    assert not (Path(cift_up_environ["CIFT_HOME"]) / "stack.json").exists()
    assert started_in_s < 30, f"cift up took {started_in_s:.1f} s"


async def test_killing_cift_up_with_sigkill_still_leaves_no_process(
    cift_up_environ: dict[str, str],
) -> None:
    cift_up_environ[env_name("marketdata_ingest_processes")] = "2"
    async with cift_up(cift_up_environ, "--no-gateway") as running:
        await running.read_until(READY_LINE, START_TIMEOUT_S)
        tree = descendants(running.process.pid)
        assert len(tree) >= 8  # postgres (and its workers), redis, kafka, five services
        info = StackInfo.from_json((Path(cift_up_environ["CIFT_HOME"]) / "stack.json").read_text())
        # The extra ingest member serves its health check and metrics like a service.
        status, _, metrics = await asyncio.to_thread(
            http_get, info.metrics_urls["marketdata-ingest-1"]
        )
        assert status == 200 and "cift_marketdata_ingest_ticks_total" in metrics
        assert any("services.marketdata ingest" in command_line(pid) for pid, _, _ in tree)
        running.process.kill()
        await running.process.wait()
        assert await wait_all_gone(tree, 10) == []


async def cift(environ: dict[str, str], *args: str) -> tuple[int, str]:
    """Run one `cift` command; its exit code and everything it printed."""
    process = await asyncio.create_subprocess_exec(
        cift_command(),
        *args,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


def status_row(status_output: str, component: str) -> list[str]:
    for line in status_output.splitlines():
        cells = line.split()
        if cells and cells[0] == component:
            return cells
    raise AssertionError(f"no row {component!r} in:\n{status_output}")


async def test_cift_up_restarts_a_killed_child_and_obeys_stop_start_restart(
    cift_up_environ: dict[str, str],
) -> None:
    async with cift_up(cift_up_environ, "--no-gateway") as running:
        await running.read_until(READY_LINE, START_TIMEOUT_S)
        home = Path(cift_up_environ["CIFT_HOME"])
        redis_pid = next(
            f["pid"] for f in await control.request(home, "status") if f["name"] == "redis"
        )
        os.kill(redis_pid, signal.SIGKILL)
        line = "cift: redis exited unexpectedly with code -9; restart 1 in 0.5 s"
        await running.read_until_prefix(line, 30)

        async def redis_back() -> bool:
            figures = await control.request(home, "status")
            return any(f["name"] == "redis" and f["uptime_s"] is not None for f in figures)

        deadline = time.monotonic() + 30
        while not await redis_back():
            assert time.monotonic() < deadline, "redis was not restarted"
            await asyncio.sleep(0.2)
        # A service that checked its dependencies while Redis was away reports NOT_SERVING
        # until its next check, at most 5 s later (seen once for auth in make test).
        deadline = time.monotonic() + 15
        while (answer := await cift(cift_up_environ, "status"))[0] != 0:
            assert time.monotonic() < deadline, answer[1]
            await asyncio.sleep(0.5)
        code, status = answer
        # component, address, restarts, last exit, uptime ("N s"), state
        assert status_row(status, "Redis")[2:4] == ["1", "-9"]
        assert status_row(status, "risk")[2] == "0"

        code, out = await cift(cift_up_environ, "stop", "risk")
        assert (code, out) == (0, "cift: risk stopped; `cift start risk` starts it again\n")
        code, status = await cift(cift_up_environ, "status")
        assert code == 1 and status_row(status, "risk")[-4:] == [
            "stopped",
            "DOWN:",
            "connection",
            "refused",
        ]
        code, out = await cift(cift_up_environ, "start", "risk")
        assert code == 0 and out.startswith("cift: risk up (pid "), out
        code, out = await cift(cift_up_environ, "restart", "auth")
        assert code == 0 and out.startswith("cift: auth up (pid "), out
        code, out = await cift(cift_up_environ, "restart", "nope")
        assert code == 1 and out.startswith("cift: no component 'nope' in this stack"), out
        code, status = await cift(cift_up_environ, "status")
        assert code == 0, status
        assert all(row.rstrip().endswith("up") for row in status.splitlines()[2:])
        # Stopping, starting and restarting on purpose is no crash.
        restarts = {f["name"]: f["restarts"] for f in await control.request(home, "status")}
        assert restarts == {name: int(name == "redis") for name in restarts}


async def test_a_crash_loop_stops_cift_up_with_the_reason_and_leaves_no_process(
    cift_up_environ: dict[str, str],
) -> None:
    # One crash is restarted (above); a component that keeps dying is a fault for a person.
    # Restarts 0.05 s after a crash, doubling, instead of 0.5 s: the same five restarts
    # take 1.5 s, not 15.5 s.
    cift_up_environ[env_name("restart_first_delay_s")] = "0.05"
    async with cift_up(cift_up_environ, "--no-gateway") as running:
        await running.read_until(READY_LINE, START_TIMEOUT_S)
        home = Path(cift_up_environ["CIFT_HOME"])
        tree = descendants(running.process.pid)
        following = asyncio.create_task(running.follow())
        exiting = asyncio.create_task(running.process.wait())
        killed: set[int] = set()
        deadline = time.monotonic() + 90
        while not exiting.done():
            assert time.monotonic() < deadline, f"no crash loop after {len(killed)} kills"
            try:
                figures = await control.request(home, "status", timeout_s=5)
            except StackError:
                break  # the stack is stopping: its control socket is gone
            redis = next(f for f in figures if f["name"] == "redis")
            if redis["uptime_s"] is not None and redis["pid"] not in killed:
                killed.add(redis["pid"])
                os.kill(redis["pid"], signal.SIGKILL)
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(exiting, 60) == 1
        await following
    assert len(killed) == 6, killed
    reason = "cift: redis crashed more than 5 times within 60 s (last exit code -9)"
    assert any(line.startswith(reason) for line in running.output), running.output
    assert running.output[-1] == "cift: stopped"
    assert await wait_all_gone(tree, 10) == []


async def test_cift_migrate_creates_every_service_schema_in_the_embedded_database(
    cift_up_environ: dict[str, str],
) -> None:
    migrate = await asyncio.create_subprocess_exec(
        cift_command(), "migrate", env=cift_up_environ, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await migrate.communicate()
    assert migrate.returncode == 0, out.decode()
    lines = out.decode().splitlines()
    assert lines[-1].startswith("cift: migrations applied in ")
    # Progress: each service's schema is reported as it is done, counted out of all.
    done = [line for line in lines if " migrated (" in line]
    assert len(done) >= 4
    assert done[-1].split(" migrated (")[1].startswith(f"{len(done)}/{len(done)}")

    database_only = Stack(
        StackOptions(home=Path(cift_up_environ["CIFT_HOME"]), with_services=False),
        cift_up_environ,
    )
    info = await database_only.start()
    try:
        conn = await asyncpg.connect(info.database_url)
        schemas = {
            row["schema_name"]
            for row in await conn.fetch("SELECT schema_name FROM information_schema.schemata")
        }
        await conn.close()
    finally:
        await database_only.stop()
    assert set(SERVICE_NAMES) <= schemas


async def test_embedded_data_survives_a_restart_unless_fresh(tmp_path: Path) -> None:
    def options(fresh: bool) -> StackOptions:
        return StackOptions(
            home=tmp_path / "home", fresh=fresh, with_services=False, free_ports=True, durable=False
        )

    async def run_sql(fresh: bool, sql: str) -> object:
        launcher = Stack(options(fresh), {})
        info = await launcher.start()
        try:
            conn = await asyncpg.connect(info.database_url)
            try:
                return await conn.fetchval(sql)
            finally:
                await conn.close()
        finally:
            await launcher.stop()

    await run_sql(False, "CREATE TABLE kept AS SELECT 42 AS id")
    assert await run_sql(False, "SELECT id FROM kept") == 42
    assert await run_sql(True, "SELECT to_regclass('public.kept') IS NULL") is True


async def test_infra_fixture_has_the_database_topics_and_redis(infra: StackInfo) -> None:
    assert infra.grpc_addrs == {} and infra.gateway_url is None
    assert infra.env["CIFT_DATABASE_URL"] == infra.database_url
    assert infra.env["CIFT_REDIS_URL"] == infra.redis_url
    assert infra.env["CIFT_KAFKA_BOOTSTRAP"] == infra.kafka_bootstrap
    conn = await asyncpg.connect(infra.database_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "cift"
        assert (await conn.fetchval("SHOW server_version")).startswith("16.")
        # An accepted order survives a crash of the database by default.
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()
    client = aioredis.from_url(infra.redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    assert set(TOPICS) <= set(await probe_kafka(infra.kafka_bootstrap))
    for well_known in (5432, 6379, 55432, 56379, 59092):
        assert f":{well_known}/" not in infra.database_url + "/" + infra.redis_url


async def test_stack_fixture_serves_every_service_behind_the_gateway(stack: StackInfo) -> None:
    await assert_every_service_serving(stack)
    assert stack.gateway_url is not None and stack.gateway_admin_url is not None
    await assert_gateway_transcodes_and_routes(stack.gateway_url, stack.gateway_admin_url)
    for name, address in stack.grpc_addrs.items():
        assert stack.env[f"CIFT_{name.upper()}_ADDR"] == address


async def test_cift_status_reports_the_fixture_stack_healthy(stack: StackInfo) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    status = await asyncio.create_subprocess_exec(
        cift_command(),
        "status",
        "--home",
        str(stack.home),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await status.communicate()
    assert status.returncode == 0, out.decode()
    rows = out.decode().splitlines()[2:]
    assert len(rows) == 3 + 2 * len(SERVICE_NAMES) + 2
    assert all(row.rstrip().endswith("up") for row in rows)


async def test_cift_user_create_makes_an_admin_in_the_running_stack(stack: StackInfo) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    email = f"ops-{time.time_ns()}@example.com"
    create = await asyncio.create_subprocess_exec(
        cift_command(),
        "user",
        "create",
        "--home",
        str(stack.home),
        "--email",
        email,
        "--admin",
        env=environ,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await create.communicate(b"Correct-Horse-Battery-7\n")
    assert create.returncode == 0, out.decode()
    assert out.decode().startswith(f"created admin {email}: user id ")
