"""The outbox relay's wake-ups: a commit notified while a pass runs is relayed at once,
and a pass that fails in any way is followed by another.

The relay waits for a NOTIFY between passes and polls only every `poll_s`. A commit
can land after a pass has read the outbox but before the pass ends; its notification
must then start the next pass, not be forgotten until the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from cift.runtime import outbox
from cift.runtime.outbox import OutboxRelay


class Listener:
    """The listening connection: what the relay calls on it, and nothing else."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    async def fetchval(self, _query: str) -> str:
        return "execution"

    async def add_listener(self, _channel: str, callback: Any) -> None:
        self.callbacks.append(callback)

    async def remove_listener(self, _channel: str, callback: Any) -> None:
        self.callbacks.remove(callback)

    def is_closed(self) -> bool:
        return False

    def notify(self) -> None:
        for callback in self.callbacks:
            callback(None, 0, "outbox_execution", "")


class Pool:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    async def fetchval(self, *_args: object) -> int:
        return 0  # rows queued again: none

    async def acquire(self) -> Listener:
        return self.listener

    async def release(self, _connection: Listener) -> None:
        return None

    async def execute(self, *_args: object) -> str:
        return "DELETE 0"


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    """The relay's run loop for the length of the block, then cancelled."""
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Passes:
    """Stands in for `relay_once`: counts the passes, runs `first` in the first one and
    says when a second one began."""

    def __init__(self, first: Callable[[], None] = lambda: None) -> None:
        self.first = first
        self.count = 0
        self.second = asyncio.Event()

    async def __call__(self) -> int:
        self.count += 1
        if self.count == 1:
            self.first()
        else:
            self.second.set()
        return 0  # rows moved: none


class Broker:
    """The producer as the relay's broker check sees it: one cluster all along."""

    async def cluster_id(self) -> str:
        return "cift-one"


def relay_on(listener: Listener, poll_s: float = 60.0) -> OutboxRelay:
    """A relay over the stand-in pool and broker; by default it polls only every 60 s,
    far beyond any test's wait, so a pass that starts came from a wake-up."""
    return OutboxRelay(Pool(listener), producer=Broker(), poll_s=poll_s, pace_s=0.0)  # type: ignore[arg-type]


async def test_a_commit_notified_during_a_pass_starts_the_next_pass() -> None:
    listener = Listener()
    relay = relay_on(listener)
    # The first pass has read an empty outbox; a commit lands and notifies now.
    passes = Passes(first=listener.notify)
    relay.relay_once = passes  # type: ignore[method-assign]
    async with running(relay):
        # Far below the 60 s poll: only the notification can have started the pass.
        await asyncio.wait_for(passes.second.wait(), timeout=10.0)
    assert passes.count == 2


async def test_a_quiet_relay_waits_for_a_notification() -> None:
    listener = Listener()
    relay = relay_on(listener)
    passes = Passes()
    relay.relay_once = passes  # type: ignore[method-assign]
    async with running(relay):
        for _ in range(20):
            await asyncio.sleep(0)
        assert passes.count == 1  # drained once, then waits: no busy loop without a wake-up
        listener.notify()
        for _ in range(100):
            if passes.count == 2:
                break
            await asyncio.sleep(0.01)
        assert passes.count == 2


async def test_the_relay_outlives_an_error_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "_RETRY_FIRST_S", 0.0)
    listener = Listener()
    relay = relay_on(listener)

    def fail() -> None:
        # What a connection the killed PostgreSQL left mid-operation raised in the fault suite.
        raise asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        )

    passes = Passes(first=fail)
    relay.relay_once = passes  # type: ignore[method-assign]
    async with running(relay):
        await asyncio.wait_for(passes.second.wait(), timeout=10.0)
    assert passes.count == 2


async def test_the_back_off_starts_over_once_the_relay_worked_again() -> None:
    listener = Listener()
    relay = relay_on(listener, poll_s=0.0)
    # Three failed passes (one outage), one that works, then two failed (the next outage).
    outcomes = iter(["fail", "fail", "fail", "ok", "fail", "fail"])
    waits: list[float] = []
    done = asyncio.Event()

    async def relay_once() -> int:
        outcome = next(outcomes, None)
        if outcome is None:
            done.set()
            await asyncio.Event().wait()  # stays here until cancelled
        if outcome == "fail":
            raise ConnectionRefusedError("the database is restarting")
        return 0

    async def back_off(seconds: float) -> None:
        waits.append(seconds)

    relay.relay_once = relay_once  # type: ignore[method-assign]
    relay._back_off = back_off  # type: ignore[method-assign]
    async with running(relay):
        await asyncio.wait_for(done.wait(), timeout=10.0)
    first = outbox._RETRY_FIRST_S
    # The "ok" pass and the failure after it share one connection: one wait between.
    assert waits == [first, 2 * first, 4 * first, first, 2 * first]
