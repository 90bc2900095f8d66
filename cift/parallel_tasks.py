"""Run a few independent compiled tasks on the calling thread and on the cores left free.

For kernels split in chunks (the bar grid, MACD's two halves): each task is a call of
a Numba `nogil` function, so the tasks run truly in parallel. The calling thread
takes tasks itself, one at a time, and helper threads take the others as they wake:
on a busy machine, where a helper may start late or not at all, the caller simply
does more of the work, and the whole takes about the serial time, not the serial
time plus a wait for a helper that the scheduler has not run (what a fixed split
over threads, Numba's `prange`, costs then: measured 2-4x slower at load 6 on two
cores). A task claimed is run by whoever claimed it; the caller returns once every
task has finished. Tasks must not share outputs and must not take the GIL for long.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Sequence

# Helper threads: one per core besides the caller's.
HELPERS = max((os.cpu_count() or 1) - 1, 0)


class _Batch:
    """Tasks handed out once each, to whichever thread asks next."""

    def __init__(self, tasks: Sequence[Callable[[], None]]) -> None:
        self._tasks = tasks
        self._claims = itertools.count()  # next() is atomic under the GIL
        self._lock = threading.Lock()
        self._left = len(tasks)
        self._finished = threading.Event()
        self._error: BaseException | None = None

    def work(self) -> None:
        """Run tasks until none is left unclaimed."""
        while (index := next(self._claims)) < len(self._tasks):
            try:
                self._tasks[index]()
            except BaseException as error:  # re-raised in the caller by `wait`
                self._error = error
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._finished.set()

    def wait(self) -> None:
        """Return when every task has run; raise the first failure of any."""
        self._finished.wait()
        if self._error is not None:
            raise self._error


_inbox: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
_started = threading.Lock()
_helpers: list[threading.Thread] = []


def _helper() -> None:
    while True:
        _inbox.get().work()


def _start_helpers() -> None:
    with _started:
        while len(_helpers) < HELPERS:
            thread = threading.Thread(target=_helper, name="cift-task-helper", daemon=True)
            thread.start()
            _helpers.append(thread)


def core_to_spare() -> bool:
    """Whether the 1-minute load average leaves a core free. A job of about a
    millisecond gains from a split only then: on a busy machine a helper that claimed
    a part and was preempted makes the caller wait longer than the part takes (MACD on
    1M points at load 5: 3.3 ms split vs 2.9 ms serial, median of 41)."""
    return HELPERS > 0 and os.getloadavg()[0] < HELPERS + 1


def run_tasks(tasks: Sequence[Callable[[], None]]) -> None:
    """Run each task once, here and on the free cores; return when all have run."""
    if not tasks:
        return
    batch = _Batch(tasks)
    if len(tasks) > 1 and HELPERS:
        if len(_helpers) < HELPERS:
            _start_helpers()
        for _ in range(min(HELPERS, len(tasks) - 1)):
            _inbox.put(batch)
    batch.work()
    batch.wait()
