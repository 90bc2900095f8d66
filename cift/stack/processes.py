"""Child processes of the launcher, supervised so that none outlives it.

Each child runs in its own session and process group (so the terminal's Ctrl-C
reaches only the launcher, which then stops children in its own order) and asks
the kernel for a signal when the launcher dies (PR_SET_PDEATHSIG, set by a small
exec shim), so even a `kill -9` of the launcher leaves nothing behind. Output goes to one log file per
child. Stopping sends the child's own polite signal, waits, then SIGKILLs the whole
group, including any grandchildren the child left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cift.stack.errors import StackError

# The first program of every child, run by the interpreter without site packages: ask
# the kernel for `death_signal` when the launcher dies (after becoming `user`, which
# would clear it), make sure the launcher did not die meanwhile, then become the real
# program. It is not a preexec_fn on purpose: Python code between fork and exec makes
# CPython fork() instead of vfork(), and fork() runs gRPC's fork handlers, which start
# threads in the child that then die on the descriptors the child closes ("epoll_wait
# error: Bad file descriptor"): services restarted next to a health probe crashed so.
_EXEC_SHIM = """
import ctypes, os, pwd, sys
signum, parent, user, program = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if user:
    account = pwd.getpwnam(user)
    os.initgroups(user, account.pw_gid)
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    os.kill(os.getpid(), signum)
os.execv(program, sys.argv[4:])
"""


def _resolve(program: str, env: Mapping[str, str] | None) -> str | None:
    """The path `program` runs from, looked up in the child's PATH like exec would."""
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    return shutil.which(program, path=path)


@dataclass
class Child:
    """One supervised process and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int
    # How long the polite signal gets before SIGKILL (a service needs its drain time).
    stop_timeout_s: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def exit_code(self) -> int | None:
        """None while the process runs."""
        return self.popen.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])

    async def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit code, or None if the process still runs after `timeout_s`."""
        if (code := self.popen.poll()) is not None:
            return code
        try:
            # A pidfd becomes readable when the process exits: no polling, no SIGCHLD handler.
            pidfd = os.pidfd_open(self.popen.pid)
        except ProcessLookupError:
            return self.popen.wait()
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return self.popen.poll()

    async def stop(self) -> None:
        """Polite signal to the leader, SIGKILL to the whole group after `stop_timeout_s`."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            if await self.wait(self.stop_timeout_s) is None:
                self._kill_group()
                await self.wait(5.0)
        # Grandchildren (PostgreSQL backends, anything a service spawned) die with the group.
        self._kill_group()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def _shim_argv(death_signal: int, user: str | None, program: str) -> list[str]:
    return [
        sys.executable,
        "-S",
        "-c",
        _EXEC_SHIM,
        str(death_signal),
        str(os.getpid()),
        user or "",
        program,
    ]


def run_to_end(argv: Sequence[str], *, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a one-off command (as `user`) to its end, output captured: `subprocess.run`'s
    `user=` would fork, which the launcher's gRPC threads do not survive (see the shim)."""
    program = _resolve(argv[0], None)
    if program is None:
        raise StackError(f"cannot run {argv[0]}: No such file or directory")
    return subprocess.run(
        [*_shim_argv(signal.SIGKILL, user, program), *argv[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    stop_timeout_s: float = 5.0,
    death_signal: int = signal.SIGKILL,
) -> Child:
    """Start `argv` as a supervised child whose stdout and stderr go to `log_path`.

    The log is appended to, so a restarted child's log still shows why the last one died.
    """
    program = _resolve(argv[0], env)
    if program is None:
        raise StackError(f"cannot start {name} ({argv[0]}): No such file or directory")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        try:
            popen = subprocess.Popen(
                [*_shim_argv(death_signal, user, program), *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"cannot start {name} ({argv[0]}): {exc.strerror or exc}") from None
    return Child(
        name=name,
        popen=popen,
        log_path=log_path,
        stop_signal=stop_signal,
        stop_timeout_s=stop_timeout_s,
    )


async def stop_in_reverse(groups: Sequence[Sequence[Child]]) -> None:
    """Stop the last-started group first; children within a group stop together."""
    for group in reversed(groups):
        await asyncio.gather(*(child.stop() for child in group))
