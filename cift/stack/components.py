"""One supervised part of a stack: how to start it, how to tell it is healthy, how to stop it.

Every process `cift up` runs — embedded PostgreSQL, Redis and broker, each service,
the gateway — is a `Component`. Starting one launches its process and waits until its
health probe passes (then runs its one-time setup, such as recreating the broker's
topics); the supervisor restarts a component the same way after a crash, and the
control channel does for `cift restart`. A component never outlives a failed start:
the process is stopped before the error reaches the caller.

It keeps the figures `cift status` shows: restarts, last exit code, uptime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cift.stack.errors import StackError
from cift.stack.probes import ProbeFailed, wait_until_answers
from cift.stack.processes import Child
from cift.stack.tasks import run_all

INFRASTRUCTURE = "infrastructure"
SERVICE = "service"
GATEWAY = "gateway"

_LOG_TAIL_LINES = 15


def failure_detail(child: Child) -> str:
    """The last lines of a child's log, indented under a header naming the file."""
    tail = child.log_tail(_LOG_TAIL_LINES)
    header = f"last lines of {child.log_path}:"
    return header + "\n" + ("\n".join("  " + line for line in tail.splitlines()) or "  (empty)")


@dataclass(eq=False)
class Component:
    """A process of the stack with its start, health and stop, and its life so far."""

    name: str
    kind: str
    # Starts a new process (the previous one, if any, has exited or been stopped).
    launch: Callable[[], Child]
    # Passes when the component answers as it should; raises ProbeFailed otherwise.
    probe: Callable[[], Awaitable[Any]]
    # What the probe checks, for messages ("service execution (127.0.0.1:50053)").
    what: str
    start_timeout_s: float
    # Runs after every successful start (e.g. the broker's topics, lost with its memory).
    after_start: Callable[[], Awaitable[None]] | None = None
    child: Child | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    # Monotonic time of the last start that became healthy; None while not running.
    healthy_since: float | None = None
    # Stopped on purpose (`cift stop`): an exit is then no crash and nothing restarts it.
    held: bool = False
    # Serializes start/stop/restart from the supervisor and the control channel.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set each time a new process has been launched; watchers wait on it while held.
    launched: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.exit_code is None

    async def start(self) -> None:
        """Launch, wait until healthy, run the after-start step; stop it again on failure."""
        self.healthy_since = None
        child = self.launch()
        self.child = child
        self.launched.set()
        try:
            try:
                await wait_until_answers(
                    self.what,
                    self.probe,
                    self.start_timeout_s,
                    still_running=lambda: child.exit_code is None,
                )
            except StackError as exc:
                raise StackError(exc.message, failure_detail(child)) from None
            if self.after_start is not None:
                await self.after_start()
        except BaseException:
            await child.stop()
            raise
        self.healthy_since = time.monotonic()

    async def stop(self) -> None:
        """Stop the process (polite signal, then SIGKILL of its group); safe when not running."""
        self.healthy_since = None
        if self.child is not None:
            await self.child.stop()

    async def health(self) -> str:
        """ "up", or why not."""
        if not self.running:
            return "stopped" if self.held else "down"
        try:
            await self.probe()
        except ProbeFailed as exc:
            return f"DOWN: {exc}"
        return "up"

    def uptime_s(self, now: float | None = None) -> float | None:
        if self.healthy_since is None or not self.running:
            return None
        return (time.monotonic() if now is None else now) - self.healthy_since

    def describe(self) -> dict[str, Any]:
        """The figures `cift status` shows for this component."""
        uptime = self.uptime_s()
        return {
            "name": self.name,
            "kind": self.kind,
            "pid": self.child.pid if self.running and self.child is not None else None,
            "state": "stopped" if self.held else ("running" if self.running else "down"),
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "uptime_s": None if uptime is None else round(uptime, 1),
        }


async def start_together(components: list[Component]) -> None:
    """Start several components side by side; the first failure cancels (and stops) the rest."""
    await run_all(component.start() for component in components)


async def stop_in_reverse(groups: list[list[Component]]) -> None:
    """Stop the last-started group first; components within a group stop together."""
    for group in reversed(groups):
        await asyncio.gather(*(component.stop() for component in group))
