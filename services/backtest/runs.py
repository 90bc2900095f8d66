"""Backtest runs from request to result: checked, stored, computed in the background,
watched, canceled, read back.

Everything that can be wrong with a request (strategy, parameters, range, the bars
themselves) is found before the run is stored, so bad input stores nothing. The
computation runs in a worker thread (the engine is CPU-bound Numba and Polars), at
most `max_concurrent` at once per process. While a run is unfinished this process
saves its progress every heartbeat, which is also how it learns of a cancel made
through another replica; an unfinished run whose heartbeat stops (its process
died) is failed by whichever replica notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime
from typing import Protocol

import asyncpg
import polars as pl

from cift.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from cift.runtime.identity import Identity
from services.backtest import store
from services.backtest.model import Outcome, Progress, Run, RunSpec, RunStatus, StrategyInfo

log = logging.getLogger(__name__)


class RunCanceled(Exception):
    """Raised inside the engine's progress callback to stop a canceled run early."""


class Engine(Protocol):
    """The backtest library as the service uses it (services/backtest/engine.py)."""

    def catalog(self) -> Sequence[StrategyInfo]: ...

    def resolve(self, spec: RunSpec) -> RunSpec:
        """The spec with the strategy's full parameters, or InvalidArgument for what the
        library refuses (unknown strategy or parameter, fast >= slow, bad cash)."""

    def check_bars(self, bars: pl.DataFrame, spec: RunSpec) -> None:
        """InvalidArgument for bars the engine cannot run on (NaN prices, disorder), or
        too few for the strategy to trade at all."""

    def run(
        self, bars: pl.DataFrame, spec: RunSpec, on_progress: Callable[[float], None]
    ) -> Outcome:
        """Compute the backtest (blocking; called in a worker thread)."""


class BarSource(Protocol):
    async def load(self, spec: RunSpec) -> pl.DataFrame: ...


class Tracker:
    """The latest progress of one run in this process, for its watchers."""

    def __init__(self, progress: Progress) -> None:
        self.latest = progress
        self.cancel_requested = threading.Event()
        self._changed = asyncio.Event()

    def update(self, status: RunStatus, progress: float, stage: str) -> None:
        if self.latest.status.finished:
            return
        self.latest = Progress(self.latest.run_id, status, progress, stage)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def updates(self) -> AsyncGenerator[Progress, None]:
        """Each distinct progress from now until the run finishes (intermediate ones may
        be skipped by a slow reader; the last one never is)."""
        seen: Progress | None = None
        while True:
            current, changed = self.latest, self._changed
            if current != seen:
                yield current
                seen = current
            if current.status.finished:
                return
            await changed.wait()


def _owned(run: Run | None, caller: Identity) -> Run:
    # Someone else's run is reported exactly like a missing one, so ids leak nothing.
    if run is None or (run.user_id != caller.user_id and not caller.is_admin):
        raise NotFound("No such backtest.")
    return run


class Backtests:
    """The backtest use cases of one service process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        history: BarSource,
        engine: Engine,
        *,
        max_concurrent: int,
        max_bars: int,
        heartbeat_s: float,
        orphan_after_s: float,
    ) -> None:
        self.pool = pool
        self.history = history
        self.engine = engine
        self.max_bars = max_bars
        self.heartbeat_s = heartbeat_s
        self.orphan_after_s = orphan_after_s
        self._slots = asyncio.Semaphore(max_concurrent)
        self._trackers: dict[str, Tracker] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- requests -----------------------------------------------------------------

    def catalog(self) -> Sequence[StrategyInfo]:
        return self.engine.catalog()

    async def create(self, caller: Identity, spec: RunSpec) -> tuple[Run, Tracker]:
        """Check everything, load the bars, store the run and start computing it."""
        spec = self.engine.resolve(spec)
        bars = await self.history.load(spec)
        if bars.height > self.max_bars:  # before the bars are read: too many is too many
            raise InvalidArgument(
                f"The range holds {bars.height} bars; a backtest may run over at most "
                f"{self.max_bars}. Narrow the range or use a longer timeframe."
            )
        self.engine.check_bars(bars, spec)
        run_id = str(uuid.uuid4())
        async with self.pool.acquire() as conn:
            run = await store.insert_run(conn, run_id, caller.user_id, spec, bars.height)
        tracker = Tracker(Progress(run_id, RunStatus.QUEUED, 0.0, "queued"))
        self._trackers[run_id] = tracker
        task = asyncio.create_task(self._execute(run_id, spec, bars, tracker), name=run_id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run, tracker

    async def get(self, caller: Identity, run_id: str, *, with_result: bool = True) -> Run:
        async with self.pool.acquire() as conn:
            return _owned(await store.get_run(conn, run_id, with_result=with_result), caller)

    async def list(
        self, caller: Identity, after: tuple[datetime, str] | None, limit: int
    ) -> list[Run]:
        async with self.pool.acquire() as conn:
            return await store.list_runs(conn, caller.user_id, after, limit)

    async def cancel(self, caller: Identity, run_id: str) -> Run:
        async with self.pool.acquire() as conn:
            run = _owned(await store.get_run(conn, run_id, with_result=False), caller)
            if run.status.finished:
                raise FailedPrecondition(
                    f"The backtest already {run.status.value}; only a queued or running one "
                    "can be canceled."
                )
            if not await store.finish_run(conn, run_id, RunStatus.CANCELED):
                # It ended between the read and the update.
                run = _owned(await store.get_run(conn, run_id, with_result=False), caller)
                raise FailedPrecondition(f"The backtest already {run.status.value}.")
            canceled = _owned(await store.get_run(conn, run_id, with_result=False), caller)
        self._stop_local(run_id)
        return canceled

    # ---- background ---------------------------------------------------------------

    def _stop_local(self, run_id: str) -> None:
        tracker = self._trackers.get(run_id)
        if tracker is not None:
            tracker.cancel_requested.set()
            tracker.update(RunStatus.CANCELED, tracker.latest.progress, "canceled")

    async def _execute(
        self, run_id: str, spec: RunSpec, bars: pl.DataFrame, tracker: Tracker
    ) -> None:
        try:
            async with self._slots:
                if tracker.cancel_requested.is_set():
                    return
                async with self.pool.acquire() as conn:
                    if not await store.start_run(conn, run_id):
                        return
                tracker.update(RunStatus.RUNNING, 0.0, "running")
                outcome = await asyncio.to_thread(
                    self.engine.run, bars, spec, self._progress_callback(tracker)
                )
                if tracker.cancel_requested.is_set():
                    return
                tracker.update(RunStatus.RUNNING, 0.99, "saving")
                async with self.pool.acquire() as conn:
                    saved = await store.save_result(conn, run_id, outcome)
                if saved:
                    tracker.update(RunStatus.SUCCEEDED, 1.0, "done")
        except RunCanceled:
            return
        except InvalidArgument as exc:
            await self._fail(run_id, tracker, exc.message)
        except asyncio.CancelledError:
            # The process is draining: say so rather than leave the run to the orphan sweep.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._fail(run_id, tracker, "The backtest service stopped; run it again.")
                )
            raise
        except Exception:
            log.exception("backtest %s failed", run_id)
            await self._fail(run_id, tracker, "The backtest failed with an internal error.")
        finally:
            self._trackers.pop(run_id, None)

    async def _fail(self, run_id: str, tracker: Tracker, error: str) -> None:
        async with self.pool.acquire() as conn:
            if await store.finish_run(conn, run_id, RunStatus.FAILED, error):
                tracker.update(RunStatus.FAILED, tracker.latest.progress, "failed")

    def _progress_callback(self, tracker: Tracker) -> Callable[[float], None]:
        """The engine's progress hook (called from its thread): publish, or stop if canceled."""
        loop = asyncio.get_running_loop()

        def on_progress(fraction: float) -> None:
            if tracker.cancel_requested.is_set():
                raise RunCanceled
            loop.call_soon_threadsafe(
                tracker.update, RunStatus.RUNNING, min(max(fraction, 0.0), 0.98), "running"
            )

        return on_progress

    async def heartbeat(self) -> None:
        """Save every local run's progress, notice cancels from other replicas, and fail
        runs orphaned by a dead process; for the life of the process."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._beat()
            except Exception:
                log.warning("could not save backtest progress", exc_info=True)

    async def _beat(self) -> None:
        async with self.pool.acquire() as conn:
            for run_id, tracker in list(self._trackers.items()):
                latest = tracker.latest
                status = await store.record_progress(conn, run_id, latest.progress, latest.stage)
                if status is RunStatus.CANCELED:
                    self._stop_local(run_id)
            for run_id in await store.fail_orphans(conn, self.orphan_after_s):
                log.warning("backtest %s was orphaned by a stopped process", run_id)

    async def close(self) -> None:
        """Stop the runs of this process (each is marked FAILED as it stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
