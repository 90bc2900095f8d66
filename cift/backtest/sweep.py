"""Parameter sweeps: a grid of parameters run in parallel, ranked by a chosen stat.

Each grid point is a full `run_backtest` in a worker process (the vector engine
releases nothing to threads, and processes use every core). The bars are checked
once here; invalid points of the grid (fast >= slow) are skipped, not failed, as
a grid over two ranges naturally contains them. Walk-forward: `walk_forward`
picks the best parameters on each training window and reports them on the
window after it, so what is reported was never seen while choosing.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import polars as pl

from cift.backtest.api import run_backtest
from cift.backtest.bars import split_bars
from cift.backtest.signals import builtin
from cift.runtime.errors import InvalidArgument

MAX_GRID = 100_000


def _grid(strategy: str, grid: Mapping[str, Sequence[object]]) -> list[dict[str, float]]:
    chosen = builtin(strategy)
    names = list(grid)
    size = math.prod(len(v) for v in grid.values())
    if not names or size == 0:
        raise InvalidArgument("A sweep needs at least one parameter with at least one value.")
    if size > MAX_GRID:
        raise InvalidArgument(f"A sweep may have at most {MAX_GRID} points, not {size}.")
    points = []
    for values in itertools.product(*(grid[n] for n in names)):
        try:
            points.append(chosen.resolve(dict(zip(names, values, strict=True))))
        except InvalidArgument as error:
            if "nknown parameter" in error.message:
                raise
    if not points:
        raise InvalidArgument(f"No point of the grid is a valid set of {strategy} parameters.")
    return points


def _tradable(
    points: list[dict[str, float]], strategy: str, bars: pl.DataFrame
) -> list[dict[str, float]]:
    """The points that can trade on `bars` (refused once, before any worker starts, when
    the bars are bad or no point can): a point whose periods outrun the bars is left
    out, as a point that is no valid set of parameters is."""
    chosen = builtin(strategy)
    per_symbol = split_bars(bars)
    kept: list[dict[str, float]] = []
    refusal: InvalidArgument | None = None
    for point in points:
        try:
            chosen.require_bars(point, per_symbol)
        except InvalidArgument as error:
            refusal = refusal or error
            continue
        kept.append(point)
    if not kept and refusal is not None:
        raise InvalidArgument(f"No point of the grid can trade on these bars; {refusal.message}")
    return kept


def _one(args: tuple[pl.DataFrame, str, dict[str, float], float, float, str]) -> dict[str, Any]:
    bars, strategy, params, cash, commission, engine = args
    result = run_backtest(bars, strategy, params, cash, commission, engine)
    return {**params, **result.stats}


def sweep(
    bars: pl.DataFrame,
    strategy: str,
    grid: Mapping[str, Sequence[object]],
    *,
    cash: float = 10_000,
    commission: float = 0.0,
    engine: str = "vector",
    sort_by: str = "sharpe",
    descending: bool = True,
    workers: int | None = None,
) -> pl.DataFrame:
    """Every valid grid point's parameters and stats, best `sort_by` first (None last)."""
    points = _tradable(_grid(strategy, grid), strategy, bars)
    jobs = [(bars, strategy, p, cash, commission, engine) for p in points]
    processes = workers or os.cpu_count() or 1
    if processes == 1 or len(jobs) == 1:
        rows = [_one(job) for job in jobs]
    else:
        # Spawned, not forked: a fork of a process whose Polars thread pool is busy hangs.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:
            rows = list(pool.map(_one, jobs, chunksize=max(1, len(jobs) // (4 * processes))))
    table = pl.DataFrame(rows, infer_schema_length=None)
    if sort_by not in table.columns:
        raise InvalidArgument(
            f"Cannot sort by {sort_by!r}; a stat is one of {', '.join(table.columns)}."
        )
    return table.sort(sort_by, descending=descending, nulls_last=True)


def walk_forward(
    bars: pl.DataFrame,
    strategy: str,
    grid: Mapping[str, Sequence[object]],
    *,
    folds: int = 4,
    cash: float = 10_000,
    commission: float = 0.0,
    sort_by: str = "sharpe",
    workers: int | None = None,
) -> pl.DataFrame:
    """Split the bars into folds + 1 windows; choose on each, report on the next."""
    if not 1 <= folds <= 50:
        raise InvalidArgument(f"folds must be between 1 and 50, not {folds}.")
    size = bars.height // (folds + 1)
    if size < 2:
        raise InvalidArgument(f"{bars.height} bars are too few for {folds} walk-forward folds.")
    names = list(grid)
    rows = []
    for fold in range(folds):
        train = bars.slice(fold * size, size)
        test = bars.slice((fold + 1) * size, size)
        ranked = sweep(train, strategy, grid, cash=cash, commission=commission,
                       sort_by=sort_by, workers=workers)  # fmt: skip
        best = {n: ranked[n][0] for n in names}
        result = run_backtest(test, strategy, best, cash, commission)
        rows.append({"fold": fold, **best, f"train_{sort_by}": ranked[sort_by][0], **result.stats})
    return pl.DataFrame(rows, infer_schema_length=None)
