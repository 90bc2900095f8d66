"""Faults under load: one at a time, at a random moment, then the books must still balance.

The real `cift up` runs the whole mesh; traders on several accounts send market
orders that fill, resting limits and cancels through the gateway without pause.
One fault at a time — kill -9 of each service and of the gateway, kill -9 of the
embedded PostgreSQL, Redis and broker (the supervisor restarts each), a service
frozen with SIGSTOP for longer than its callers' deadlines — each after a random
stretch of steady load. After each, the component must be back and orders
confirmed again within seconds, and the books must hold (tests/faults/books.py).
At the end, with the load stopped, no order may be stuck and every fill must have
reached execution.fills.v1. Clients may see 503/504/429 with retry advice or a
refused connection (the gateway itself killed), never a 500.

CIFT_FAULT_SEED replays a run's order of faults and moments (the seed is printed);
CIFT_FAULT_ONLY=postgres,risk injects only the faults of those components;
CIFT_EMBEDDED_POSTGRES_SYNCHRONOUS_COMMIT=false runs the stack with the fast, lossy
commit setting, to see what the suite catches then (confirmed orders lost).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cift.runtime.config import env_name
from cift.stack import control
from cift.stack.cli import READY_LINE
from cift.stack.launcher import StackInfo
from cift.stack.ports import PortPlan
from tests.cift_process import RunningCift, cift_up
from tests.faults.books import (
    FillsTopic,
    fill_ids,
    settled_problems,
    snapshot_problems,
)
from tests.faults.load import Load

pytestmark = pytest.mark.integration

OPENING_CASH = Decimal("100000")
ACCOUNTS = 4
START_TIMEOUT_S = 120.0
# Back and confirming orders again within this long, or the fault failed the suite.
RECOVERY_LIMIT_S = 45.0
# Longer than execution's 2 s deadline on risk and the gateway's retry budget.
FREEZE_S = 5.0


@dataclass(frozen=True)
class Fault:
    component: str
    action: str  # "kill" (SIGKILL) or "freeze" (SIGSTOP for FREEZE_S)

    @property
    def name(self) -> str:
        return f"{'kill -9' if self.action == 'kill' else 'SIGSTOP'} {self.component}"


FAULTS = [
    *(Fault(name, "kill") for name in ("execution", "risk", "marketdata", "auth", "gateway")),
    *(Fault(name, "kill") for name in ("postgres", "redis", "kafka")),
    Fault("risk", "freeze"),
]


@dataclass
class Outcome:
    fault: Fault
    recovery_s: float
    problems: list[str]


async def component_figures(home: Path, name: str) -> dict[str, Any]:
    figures: list[dict[str, Any]] = await control.request(home, "status")
    return next(f for f in figures if f["name"] == name)


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
    """Seconds until `check` passed; fails the test naming `what` after `timeout_s`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, f"{what} within {timeout_s:g} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def inject(home: Path, fault: Fault, load: Load) -> float:
    """Inject one fault; seconds from its end to the component healthy and orders confirmed."""
    before = await component_figures(home, fault.component)
    pid = before["pid"]
    assert pid is not None, f"{fault.component} does not run before its fault"
    if fault.action == "kill":
        os.kill(pid, signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(FREEZE_S)
        os.kill(pid, signal.SIGCONT)
    ended = time.monotonic()

    async def back() -> bool:
        now = await component_figures(home, fault.component)
        replaced = now["pid"] != pid if fault.action == "kill" else True
        return replaced and now["uptime_s"] is not None and load.ledger.last_success > ended

    await until(f"{fault.name}: recovered", back, RECOVERY_LIMIT_S)
    return time.monotonic() - ended


def fault_environ(tmp_path: Path) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CIFT_")}
    environ.update(PortPlan.free().to_environ())
    environ[env_name("home")] = str(tmp_path / "cift-home")
    environ[env_name("opening_cash")] = str(OPENING_CASH)
    commit_setting = env_name("embedded_postgres_synchronous_commit")
    if commit_setting in os.environ:
        environ[commit_setting] = os.environ[commit_setting]
    return environ


async def test_books_balance_after_every_fault_under_load(tmp_path: Path) -> None:
    seed = int(os.environ.get("CIFT_FAULT_SEED", random.randrange(1 << 30)))
    chance = random.Random(seed)
    only = set(filter(None, os.environ.get("CIFT_FAULT_ONLY", "").split(",")))
    chosen = [fault for fault in FAULTS if not only or fault.component in only]
    faults = chance.sample(chosen, len(chosen))
    environ = fault_environ(tmp_path)
    home = Path(environ[env_name("home")])
    async with cift_up(environ) as running:
        await running.read_until(READY_LINE, START_TIMEOUT_S)
        following = asyncio.create_task(running.follow())
        info = StackInfo.from_json((home / "stack.json").read_text())
        assert info.gateway_url is not None
        load = await asyncio.to_thread(Load, info.gateway_url, ACCOUNTS)
        accounts = load.account_ids
        topic = FillsTopic(info.kafka_bootstrap, set(accounts))
        await topic.start()
        load.start()
        outcomes: list[Outcome] = []
        try:
            for fault in faults:
                await asyncio.sleep(chance.uniform(1.0, 4.0))
                recovery_s = await inject(home, fault, load)
                problems = await snapshot_problems(
                    info.database_url, accounts, dict(load.ledger.confirmed), OPENING_CASH
                )
                outcomes.append(Outcome(fault, recovery_s, problems))
        finally:
            await asyncio.to_thread(load.stop)
        try:
            settle_s = await until(
                "orders settled after the load",
                lambda: _no_problems(settled_problems(info.database_url, accounts)),
                30.0,
            )
        except AssertionError as failure:
            # Which orders, and the fault order (seed), are what a replay needs.
            stuck = await settled_problems(info.database_url, accounts)
            raise AssertionError(
                f"{failure} (seed {seed}, faults {[f.name for f in faults]}): {stuck[:5]}"
            ) from None
        stored = await fill_ids(info.database_url, accounts)
        try:
            await until(
                "every fill on execution.fills.v1",
                lambda: _true(not topic.problems(stored)),
                30.0,
            )
        except AssertionError as failure:
            # Which fills, and the fault order (seed), are what a replay needs.
            problems = topic.problems(stored)
            raise AssertionError(
                f"{failure} (seed {seed}, faults {[f.name for f in faults]}): "
                f"{len(problems)} problems of {len(stored)} stored fills, first {problems[:5]}"
            ) from None
        await topic.stop()
        final = await snapshot_problems(
            info.database_url, accounts, dict(load.ledger.confirmed), OPENING_CASH
        )
        figures = await control.request(home, "status")
        following.cancel()
    _report(seed, running, load, outcomes, final, len(stored), topic.duplicates, settle_s, figures)
    ledger = load.ledger
    assert [(o.fault.name, o.problems) for o in outcomes if o.problems] == []
    assert final == []
    assert ledger.abandoned == []
    assert ledger.bad_answers == []
    assert dict(ledger.without_retry_advice) == {}
    restarts = {f["name"]: f["restarts"] for f in figures}
    for fault in faults:
        if fault.action == "kill":
            assert restarts[fault.component] >= 1, (fault.name, restarts)


async def _no_problems(problems: Awaitable[list[str]]) -> bool:
    return not await problems


async def _true(value: bool) -> bool:
    return value


def _report(
    seed: int,
    running: RunningCift,
    load: Load,
    outcomes: list[Outcome],
    final: list[str],
    fills: int,
    redelivered: int,
    settle_s: float,
    figures: list[dict[str, Any]],
) -> None:
    """The figures of the run, printed (pytest -s) and written to CIFT_FAULT_REPORT if set."""
    ledger = load.ledger
    lost = sum("is lost" in problem for problem in final)
    duplicated = sum("is duplicated" in problem for problem in final)
    bad = Counter(f"{b.method} {b.path[:16]} {b.status} {b.body[:80]}" for b in ledger.bad_answers)
    lines = [
        f"fault suite (seed {seed}): {len(outcomes)} faults injected, "
        f"{ledger.submitted} orders sent, {len(ledger.confirmed)} confirmed, lost {lost}, "
        f"duplicated {duplicated} (orders under one client order id), {fills} fills, each on "
        f"execution.fills.v1 ({redelivered} redeliveries, deduplicated by consumers); "
        f"orders settled {settle_s:.1f} s after the load stopped",
        f"HTTP statuses: {dict(sorted(ledger.statuses.items()))}; retried: {dict(ledger.retried)};"
        f" retryable without Retry-After: {dict(ledger.without_retry_advice)}",
        *(
            f"  {o.fault.name:<16} recovered in {o.recovery_s:5.1f} s"
            + ("" if not o.problems else "  PROBLEMS: " + "; ".join(o.problems[:3]))
            for o in outcomes
        ),
        "restarts: " + ", ".join(f"{f['name']} {f['restarts']}" for f in figures),
        *(f"  {line}" for line in running.output if "exited unexpectedly" in line),
        *(f"bad answer x{count}: {text}" for text, count in bad.most_common(10)),
        *(f"final problem: {problem}" for problem in final[:10]),
    ]
    print("\n".join(lines))
    figures_file = os.environ.get("CIFT_FAULT_REPORT")
    if figures_file:
        Path(figures_file).write_text("\n".join(lines) + "\n")
