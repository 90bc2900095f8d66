"""Supervision of the launcher's children: logs, process groups, stopping, dying together."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from cift.stack.errors import StackError
from cift.stack.logs import LogFollower
from cift.stack.processes import Child, run_to_end, spawn, stop_in_reverse
from cift.stack.services import wait_serving
from cift.stack.tasks import run_all

PYTHON = sys.executable


def gone(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    return status == psutil.STATUS_ZOMBIE


async def until_logged(child: Child, text: str = "ready", timeout_s: float = 10.0) -> str:
    """The child's log once it contains `text` (children print a marker when set up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = child.log_tail()
        if text in log or time.monotonic() > deadline:
            return log
        await asyncio.sleep(0.02)


async def wait_until_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        await asyncio.sleep(0.05)
    return gone(pid)


async def test_child_output_and_errors_go_to_its_log_file(tmp_path: Path) -> None:
    child = spawn(
        "talker",
        [PYTHON, "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"],
        log_path=tmp_path / "logs" / "talker.log",
    )
    assert await child.wait(10) == 0
    assert child.log_tail().splitlines() == ["to stdout", "to stderr"]


async def test_log_tail_keeps_only_the_last_lines(tmp_path: Path) -> None:
    child = spawn(
        "counter", [PYTHON, "-c", "for i in range(100): print(i)"], log_path=tmp_path / "c.log"
    )
    await child.wait(10)
    assert child.log_tail(3).splitlines() == ["97", "98", "99"]


async def test_wait_reports_none_while_running_and_the_exit_code_after(tmp_path: Path) -> None:
    child = spawn(
        "sleeper",
        [PYTHON, "-c", "import time, sys; time.sleep(0.5); sys.exit(7)"],
        log_path=tmp_path / "s.log",
    )
    assert await child.wait(0.05) is None
    assert child.exit_code is None
    assert await child.wait(10) == 7
    assert child.exit_code == 7


async def test_child_runs_in_its_own_session_so_terminal_ctrl_c_skips_it(tmp_path: Path) -> None:
    child = spawn(
        "sleeper", [PYTHON, "-c", "import time; time.sleep(30)"], log_path=tmp_path / "s.log"
    )
    try:
        assert os.getpgid(child.pid) == child.pid
        assert os.getsid(child.pid) == child.pid
        assert os.getpgid(child.pid) != os.getpgid(0)
    finally:
        await child.stop()


async def test_stop_sends_the_childs_own_signal_first(tmp_path: Path) -> None:
    child = spawn(
        "polite",
        [
            PYTHON,
            "-c",
            textwrap.dedent(
                """
                import signal, sys, time
                def polite(*_):
                    print("got SIGINT", flush=True)
                    sys.exit(0)
                signal.signal(signal.SIGINT, polite)
                print("ready", flush=True)
                time.sleep(30)
                """
            ),
        ],
        log_path=tmp_path / "p.log",
        stop_signal=signal.SIGINT,
    )
    await until_logged(child)
    await child.stop()
    assert child.exit_code == 0
    assert "got SIGINT" in child.log_tail()


async def test_stop_escalates_to_sigkill_when_the_child_ignores_sigterm(tmp_path: Path) -> None:
    child = spawn(
        "stubborn",
        [
            PYTHON,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        log_path=tmp_path / "s.log",
        stop_timeout_s=0.3,
    )
    await until_logged(child)
    started = time.monotonic()
    await child.stop()
    assert child.exit_code == -signal.SIGKILL
    assert time.monotonic() - started < 5


async def test_stop_also_kills_grandchildren_left_in_the_group(tmp_path: Path) -> None:
    child = spawn(
        "parent",
        [
            PYTHON,
            "-c",
            textwrap.dedent(
                f"""
                import subprocess, time
                grandchild = subprocess.Popen([{PYTHON!r}, "-c", "import time; time.sleep(60)"])
                print(grandchild.pid, "ready", flush=True)
                time.sleep(60)
                """
            ),
        ],
        log_path=tmp_path / "parent.log",
    )
    grandchild = int((await until_logged(child)).split()[0])
    await child.stop()
    assert await wait_until_gone(grandchild)


async def test_children_die_when_the_launcher_is_killed_with_sigkill(tmp_path: Path) -> None:
    launcher_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from cift.stack.processes import spawn
        child = spawn("orphan-candidate", [{PYTHON!r}, "-c", "import time; time.sleep(60)"],
                      log_path=Path({str(tmp_path / "child.log")!r}))
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    launcher = await asyncio.create_subprocess_exec(
        PYTHON, "-c", launcher_code, stdout=asyncio.subprocess.PIPE
    )
    assert launcher.stdout is not None
    child_pid = int(await launcher.stdout.readline())
    assert not gone(child_pid)
    launcher.kill()
    await launcher.wait()
    assert await wait_until_gone(child_pid)


async def test_missing_program_is_a_stack_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"cannot start broker \(/no/such/tansu\)"):
        spawn("broker", ["/no/such/tansu"], log_path=tmp_path / "b.log")


async def test_stop_in_reverse_stops_the_last_group_first(tmp_path: Path) -> None:
    order_file = tmp_path / "order"
    code = textwrap.dedent(
        """
        import signal, sys, time
        def record(*_):
            with open({path!r}, "a") as order:
                order.write({name!r} + "\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, record)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    children = [
        spawn(
            name,
            [PYTHON, "-c", code.format(path=str(order_file), name=name)],
            log_path=tmp_path / f"{name}.log",
        )
        for name in ("infra", "service", "gateway")
    ]
    for child in children:
        await until_logged(child)
    await stop_in_reverse([[children[0]], [children[1]], [children[2]]])
    assert order_file.read_text().split() == ["gateway", "service", "infra"]


async def test_service_that_exits_at_start_is_named_with_its_log_tail(tmp_path: Path) -> None:
    child = spawn(
        "execution",
        [PYTHON, "-c", "import sys; print('cannot reach PostgreSQL'); sys.exit(3)"],
        log_path=tmp_path / "execution.log",
    )
    with pytest.raises(StackError) as raised:
        await wait_serving(child, "127.0.0.1:9", timeout_s=10)
    assert raised.value.message.startswith(
        "service execution (127.0.0.1:9) exited before it answered"
    )
    assert "cannot reach PostgreSQL" in raised.value.detail
    assert str(tmp_path / "execution.log") in raised.value.detail


async def test_service_that_never_answers_times_out_naming_it(tmp_path: Path) -> None:
    child = spawn(
        "risk", [PYTHON, "-c", "import time; time.sleep(30)"], log_path=tmp_path / "risk.log"
    )
    try:
        with pytest.raises(
            StackError, match=r"service risk \(127.0.0.1:9\) did not answer within 0.5 s"
        ):
            await wait_serving(child, "127.0.0.1:9", timeout_s=0.5)
    finally:
        await child.stop()


async def test_first_failure_cancels_the_other_steps() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise StackError("auth migrations failed")

    started = time.monotonic()
    with pytest.raises(StackError, match="auth migrations failed"):
        await run_all([slow(), failing()])
    assert cancelled.is_set()
    assert time.monotonic() - started < 5


def test_log_follower_prefixes_lines_and_waits_for_partial_ones(tmp_path: Path) -> None:
    out = io.StringIO()
    follower = LogFollower(tmp_path, out)
    (tmp_path / "auth.log").write_text("first\nsecond\npart")
    follower.print_new_lines()
    with (tmp_path / "auth.log").open("a") as log:
        log.write("ial\n")
    (tmp_path / "risk.log").write_text("halted\n")
    follower.print_new_lines()
    assert out.getvalue().splitlines() == [
        "[auth] first",
        "[auth] second",
        "[auth] partial",
        "[risk] halted",
    ]


def test_a_one_off_command_runs_to_its_end_with_its_output_and_status() -> None:
    result = run_to_end(
        [
            PYTHON,
            "-c",
            "import os, sys; print(os.getuid()); print('oops', file=sys.stderr); sys.exit(3)",
        ]
    )
    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (
        3,
        str(os.getuid()),
        "oops",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run a command as another user")
def test_a_one_off_command_runs_as_the_user_given() -> None:
    result = run_to_end(["id", "-u"], user="nobody")
    assert result.returncode == 0 and result.stdout.strip() != "0"


def test_a_missing_one_off_program_is_a_stack_error_naming_it() -> None:
    with pytest.raises(StackError, match="no-such-program-here"):
        run_to_end(["no-such-program-here"])
