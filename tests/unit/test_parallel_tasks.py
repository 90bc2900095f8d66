"""Tasks split over the cores each run exactly once, and a failure reaches the caller."""

from __future__ import annotations

import os
import threading
from functools import partial

import pytest

from cift import parallel_tasks
from cift.parallel_tasks import run_tasks


def test_every_task_runs_once_and_the_caller_returns_after_the_last() -> None:
    runs = [0] * 50
    threads: set[int] = set()

    def task(index: int) -> None:
        runs[index] += 1
        threads.add(threading.get_ident())

    for _ in range(20):
        run_tasks([partial(task, i) for i in range(len(runs))])
    assert runs == [20] * 50
    assert threading.get_ident() in threads


def test_no_task_and_one_task() -> None:
    run_tasks([])
    ran: list[int] = []
    run_tasks([lambda: ran.append(1)])
    assert ran == [1]


def test_a_failing_task_raises_in_the_caller_after_the_others_ran() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise ValueError("chunk 2 failed")

    with pytest.raises(ValueError, match="chunk 2 failed"):
        run_tasks([lambda: ran.append(1), fail, lambda: ran.append(3)])
    assert sorted(ran) == [1, 3]


@pytest.mark.parametrize(("load", "spare"), [(0.3, True), (1.9, True), (2.0, False), (7.5, False)])
def test_a_core_is_spare_only_while_the_load_average_is_below_the_core_count(
    monkeypatch: pytest.MonkeyPatch, load: float, spare: bool
) -> None:
    monkeypatch.setattr(parallel_tasks, "HELPERS", 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert parallel_tasks.core_to_spare() is spare
