"""Child processes of the launcher, supervised so that none outlives it.

Each child runs in its own session and process group (so the terminal's Ctrl-C
reaches only the launcher, which then stops children in its own order) and asks
the kernel for a signal when the launcher dies (PR_SET_PDEATHSIG), so even a
`kill -9` of the launcher leaves nothing behind. Output goes to one log file per
child. Stopping sends the child's own polite signal, waits, then SIGKILLs the whole
group, including any grandchildren the child left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cift.stack.errors import StackError

_PR_SET_PDEATHSIG = 1


def _die_with_parent(death_signal: int) -> Callable[[], None]:
    """Build the preexec hook; libc is loaded here because the forked child must not import."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent_pid = os.getpid()

    def hook() -> None:
        # Runs in the child after any setuid (which would clear the setting again).
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        # The launcher may have died between fork and prctl; then nobody will signal us.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), death_signal)

    return hook


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
                await asyncio.wait_for(exited, timeout_s)
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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                user=user,
                start_new_session=True,
                preexec_fn=_die_with_parent(death_signal),
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
