"""Keeps a running stack whole: a component that exits unexpectedly is started again.

One crash must not end everyone's session, so a component that dies (kill -9, an
out-of-memory kill, a bug) is restarted after an exponential backoff — 0.5 s, 1 s,
2 s … up to 30 s, back to 0.5 s once it has stayed healthy for a minute — with one
line in `cift up`'s output per restart. Only a crash loop (more than 5 restarts
within 60 s) stops the stack, with the reason: restarting then only hides a fault
that needs a person.

Operators also stop, start and restart one component by hand (`cift stop execution`);
a component stopped on purpose is "held": its exit is no crash and nothing restarts
it until `cift start`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cift.stack.components import Component
from cift.stack.errors import StackError


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    # A component healthy this long starts again from the first delay after its next crash.
    healthy_reset_s: float = 60.0
    # More restarts than this within the window is a crash loop.
    crash_loop_restarts: int = 5
    crash_loop_window_s: float = 60.0


@dataclass
class RestartHistory:
    """One component's recent crashes and its next backoff; pure, so the rules are unit-tested."""

    policy: RestartPolicy
    crash_times: list[float] = field(default_factory=list)
    next_delay_s: float | None = None

    def on_crash(self, now: float, healthy_for_s: float | None) -> float | None:
        """The delay before restarting after a crash at `now`, or None for a crash loop."""
        policy = self.policy
        if self.next_delay_s is None or (
            healthy_for_s is not None and healthy_for_s >= policy.healthy_reset_s
        ):
            self.next_delay_s = policy.first_delay_s
        self.crash_times = [t for t in self.crash_times if now - t < policy.crash_loop_window_s]
        if len(self.crash_times) >= policy.crash_loop_restarts:
            return None
        self.crash_times.append(now)
        delay_s = self.next_delay_s
        self.next_delay_s = min(delay_s * 2, policy.max_delay_s)
        return delay_s


class CrashLoop(StackError):
    """A component kept crashing; the stack stops rather than hide it."""


class Supervisor:
    """Watches every component of a started stack and restarts the ones that crash."""

    def __init__(
        self,
        components: Sequence[Component],
        say: Callable[[str], None],
        policy: RestartPolicy | None = None,
    ) -> None:
        self.components = {component.name: component for component in components}
        self.policy = policy or RestartPolicy()
        self._history = {name: RestartHistory(self.policy) for name in self.components}
        self._say = say

    async def run(self) -> None:
        """Supervise until cancelled; raises `CrashLoop` when a component keeps crashing."""
        watchers = [asyncio.create_task(self._watch(c)) for c in self.components.values()]
        try:
            await asyncio.gather(*watchers)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _watch(self, component: Component) -> None:
        while True:
            child = component.child
            if child is None:
                await self._next_launch(component, None)
                continue
            code = await child.wait()
            if component.held or component.child is not child:
                # Stopped or restarted on purpose; wait for whatever runs next.
                await self._next_launch(component, child)
                continue
            await self._restart_after_crash(component, child, code)

    @staticmethod
    async def _next_launch(component: Component, previous: object) -> None:
        while component.child is previous:
            component.launched.clear()
            await component.launched.wait()

    async def _restart_after_crash(
        self, component: Component, child: Any, code: int | None
    ) -> None:
        now = time.monotonic()
        healthy_for_s = None if component.healthy_since is None else now - component.healthy_since
        component.last_exit_code = code
        # Whatever the process left in its group (PostgreSQL's backends) goes with it.
        await component.stop()
        delay_s = self._history[component.name].on_crash(now, healthy_for_s)
        if delay_s is None:
            raise CrashLoop(
                f"{component.name} crashed more than {self.policy.crash_loop_restarts} times "
                f"within {self.policy.crash_loop_window_s:g} s (last exit code {code}); "
                f"see {child.log_path}"
            )
        self._say(
            f"{component.name} exited unexpectedly with code {code}; "
            f"restart {component.restarts + 1} in {delay_s:g} s (log {child.log_path})"
        )
        await asyncio.sleep(delay_s)
        async with component.lock:
            if component.held or component.child is not child:
                return
            component.restarts += 1
            try:
                await component.start()
            except StackError as exc:
                # The new process is stopped; the watcher sees it exited and counts a crash.
                self._say(f"{component.name} did not come back: {exc.message}")

    # ---- what the control channel asks for ----------------------------------------

    def component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            known = ", ".join(self.components)
            raise StackError(f"no component {name!r} in this stack (it has {known})") from None

    def status(self) -> list[dict[str, Any]]:
        return [component.describe() for component in self.components.values()]

    async def stop_component(self, name: str) -> str:
        component = self.component(name)
        async with component.lock:
            component.held = True
            await component.stop()
        return f"{name} stopped; `cift start {name}` starts it again"

    async def start_component(self, name: str) -> str:
        component = self.component(name)
        async with component.lock:
            if component.running:
                component.held = False
                return (
                    f"{name} already runs (pid {component.child.pid if component.child else '?'})"
                )
            return await self._start_held(component)

    async def restart_component(self, name: str) -> str:
        component = self.component(name)
        async with component.lock:
            component.held = True
            await component.stop()
            return await self._start_held(component)

    async def _start_held(self, component: Component) -> str:
        started = time.monotonic()
        try:
            await component.start()
        finally:
            # Even a failed start hands the component back to the supervisor, which then
            # counts its exit as a crash; a stopped process would otherwise stay down unseen.
            component.held = False
        pid = component.child.pid if component.child is not None else "?"
        return f"{component.name} up (pid {pid}) in {time.monotonic() - started:.1f} s"
