"""Tasks split over the cores each run exactly once, and a failure reaches the caller."""

from __future__ import annotations

import threading
from functools import partial

import pytest

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
