"""The supervisor of `cift up`: restart with backoff, crash loops, held components, control."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cift.stack import control
from cift.stack.cli import supervision_cells
from cift.stack.components import SERVICE, Component
from cift.stack.errors import StackError
from cift.stack.probes import ProbeFailed
from cift.stack.processes import spawn
from cift.stack.supervisor import CrashLoop, RestartHistory, RestartPolicy, Supervisor

PYTHON = sys.executable

# Small delays so a test sees several restarts in a second; the rules are the same.
QUICK = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, healthy_reset_s=60.0)


def test_backoff_doubles_from_half_a_second_up_to_thirty_seconds() -> None:
    history = RestartHistory(RestartPolicy(crash_loop_restarts=100))
    # One crash every 10 minutes: never a loop, never healthy for long (healthy_for=None).
    delays = [history.on_crash(600.0 * n, None) for n in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_starts_over_after_a_minute_healthy() -> None:
    history = RestartHistory(RestartPolicy())
    assert history.on_crash(0.0, None) == 0.5
    assert history.on_crash(100.0, 59.0) == 1.0
    assert history.on_crash(200.0, 60.0) == 0.5


def test_sixth_crash_within_a_minute_is_a_crash_loop() -> None:
    history = RestartHistory(RestartPolicy())
    assert all(history.on_crash(float(n), None) is not None for n in range(5))
    assert history.on_crash(5.0, None) is None


def test_crashes_spread_over_more_than_a_minute_are_no_loop() -> None:
    history = RestartHistory(RestartPolicy())
    assert all(history.on_crash(13.0 * n, None) is not None for n in range(20))


def sleeper(name: str, tmp_path: Path, argv: list[str] | None = None) -> Component:
    """A component whose process sleeps (or runs `argv`) and is healthy while it runs."""
    component: Component

    async def running() -> None:
        if not component.running:
            raise ProbeFailed("not running")

    component = Component(
        name=name,
        kind=SERVICE,
        launch=lambda: spawn(
            name,
            argv or [PYTHON, "-c", "import time; time.sleep(60)"],
            log_path=tmp_path / f"{name}.log",
        ),
        probe=running,
        what=f"test component {name}",
        start_timeout_s=5.0,
    )
    return component


def ignore(_message: str) -> None:
    pass


async def until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_killed_component_is_restarted_counted_and_logged_once(tmp_path: Path) -> None:
    component = sleeper("execution", tmp_path)
    said: list[str] = []
    await component.start()
    supervisor = Supervisor([component], said.append, QUICK)
    supervising = asyncio.create_task(supervisor.run())
    try:
        first = component.child
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        await until(lambda: component.restarts == 1 and component.healthy_since is not None)
        assert component.child is not first and component.running
        assert component.last_exit_code == -signal.SIGKILL
        assert len(said) == 1
        assert said[0].startswith("execution exited unexpectedly with code -9; restart 1 in 0.05 s")
        figures = supervisor.status()[0]
        assert figures["restarts"] == 1 and figures["last_exit_code"] == -9
        assert component.child is not None
        assert figures["state"] == "running" and figures["pid"] == component.child.pid
    finally:
        supervising.cancel()
        await asyncio.gather(supervising, return_exceptions=True)
        await component.stop()


async def test_a_restarted_component_is_prepared_again_like_at_first_start(
    tmp_path: Path,
) -> None:
    # The broker's topics die with its memory: its preparation must run after each start.
    component = sleeper("kafka", tmp_path)
    prepared: list[int] = []

    async def prepare() -> None:
        assert component.child is not None
        prepared.append(component.child.pid)

    component.after_start = prepare
    await component.start()
    supervisor = Supervisor([component], ignore, QUICK)
    supervising = asyncio.create_task(supervisor.run())
    try:
        first = component.child
        assert first is not None and prepared == [first.pid]
        os.kill(first.pid, signal.SIGKILL)
        await until(lambda: component.restarts == 1 and component.healthy_since is not None)
        assert component.child is not None
        assert prepared == [first.pid, component.child.pid]
        await supervisor.restart_component("kafka")
        assert len(prepared) == 3 and prepared[-1] == component.child.pid
    finally:
        supervising.cancel()
        await asyncio.gather(supervising, return_exceptions=True)
        await component.stop()


async def test_a_component_that_keeps_crashing_stops_supervision_with_the_reason(
    tmp_path: Path,
) -> None:
    # Healthy at once, then exits with code 3 a moment later: a crash loop.
    component = sleeper(
        "risk", tmp_path, [PYTHON, "-c", "import sys, time; time.sleep(0.2); sys.exit(3)"]
    )
    said: list[str] = []
    await component.start()
    supervisor = Supervisor([component], said.append, QUICK)
    with pytest.raises(CrashLoop) as raised:
        await asyncio.wait_for(supervisor.run(), 30)
    assert raised.value.message.startswith(
        "risk crashed more than 5 times within 60 s (last exit code 3)"
    )
    assert component.restarts == 5 and len(said) == 5
    await component.stop()


async def test_a_component_stopped_on_purpose_stays_down_until_started(tmp_path: Path) -> None:
    component = sleeper("marketdata", tmp_path)
    await component.start()
    supervisor = Supervisor([component], ignore, QUICK)
    supervising = asyncio.create_task(supervisor.run())
    try:
        assert (await supervisor.stop_component("marketdata")).startswith("marketdata stopped")
        await asyncio.sleep(0.3)
        assert not component.running and component.restarts == 0
        assert supervisor.status()[0]["state"] == "stopped"
        assert (await supervisor.start_component("marketdata")).startswith("marketdata up (pid ")
        # A tuple: mypy would keep `running` narrowed to False from the assert above.
        assert (component.running, component.held) == (True, False)
        # Supervised again: a crash now is restarted.
        assert component.child is not None
        os.kill(component.child.pid, signal.SIGKILL)
        await until(lambda: component.restarts == 1 and component.running)
    finally:
        supervising.cancel()
        await asyncio.gather(supervising, return_exceptions=True)
        await component.stop()


async def test_restart_replaces_the_process_without_counting_a_crash(tmp_path: Path) -> None:
    component = sleeper("auth", tmp_path)
    await component.start()
    supervisor = Supervisor([component], ignore, QUICK)
    supervising = asyncio.create_task(supervisor.run())
    try:
        before = component.child
        assert before is not None
        await supervisor.restart_component("auth")
        assert component.child is not before and component.running
        await asyncio.sleep(0.3)
        assert component.restarts == 0 and component.last_exit_code is None
    finally:
        supervising.cancel()
        await asyncio.gather(supervising, return_exceptions=True)
        await component.stop()


async def test_control_socket_answers_status_and_refuses_unknown_components(
    tmp_path: Path,
) -> None:
    component = sleeper("gateway", tmp_path)
    await component.start()
    server = control.ControlServer(tmp_path, Supervisor([component], ignore, QUICK))
    await server.start()
    try:
        assert oct(server.path.stat().st_mode & 0o777) == "0o600"
        figures = await control.request(tmp_path, "status")
        assert [f["name"] for f in figures] == ["gateway"]
        with pytest.raises(StackError, match="no component 'nope' in this stack"):
            await control.request(tmp_path, "restart", "nope")
        message = await control.request(tmp_path, "restart", "gateway")
        assert message.startswith("gateway up (pid ")
        assert await server.answer(b"not json") == {
            "ok": False,
            "error": "a request is one JSON object with a 'command'",
        }
        assert (await server.answer(json.dumps({"command": "rm"}).encode()))["ok"] is False
    finally:
        await server.close()
        await component.stop()
    with pytest.raises(StackError, match="no cift up runs with home"):
        await control.request(tmp_path, "status")


def test_a_deep_home_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    assert len(str(control.socket_path(deep))) < 100
    assert control.socket_path(deep) != control.socket_path(tmp_path / ("e" * 120))


async def test_a_start_that_never_gets_healthy_stops_the_process_and_names_it(
    tmp_path: Path,
) -> None:
    async def never() -> None:
        raise ProbeFailed("connection refused")

    component = Component(
        name="execution",
        kind=SERVICE,
        launch=lambda: spawn(
            "execution",
            [PYTHON, "-c", "print('warming up', flush=True); import time; time.sleep(60)"],
            log_path=tmp_path / "execution.log",
        ),
        probe=never,
        what="service execution (127.0.0.1:9)",
        start_timeout_s=0.5,
    )
    with pytest.raises(StackError) as raised:
        await component.start()
    assert raised.value.message == (
        "service execution (127.0.0.1:9) did not answer within 0.5 s: connection refused"
    )
    assert "warming up" in raised.value.detail
    assert not component.running and component.healthy_since is None


def test_status_rows_show_the_supervised_figures_of_their_component() -> None:
    supervised: dict[str, dict[str, Any]] = {
        "postgres": {"restarts": 2, "last_exit_code": -9, "uptime_s": 61.4, "state": "running"},
        "risk": {"restarts": 0, "last_exit_code": None, "uptime_s": None, "state": "stopped"},
    }
    assert supervision_cells("PostgreSQL", supervised) == ["2", "-9", "61 s"]
    assert supervision_cells("risk", supervised) == ["0", "", "stopped"]
    assert supervision_cells("risk metrics", supervised) == ["", "", ""]
