"""Settings of the backtest process: how many runs at once, how big, how watched."""

from __future__ import annotations

from dataclasses import dataclass

from cift.runtime.config import CommonConfig, setting


@dataclass(frozen=True)
class BacktestConfig(CommonConfig):
    backtest_max_concurrent_runs: int = setting(
        2, "Backtests one process computes at once; later ones wait as QUEUED."
    )
    backtest_max_bars: int = setting(
        2_000_000, "Most bars (all symbols together) one backtest may run over."
    )
    backtest_max_equity_points: int = setting(
        5000, "Most equity-curve points kept per run (thinned evenly; the last bar is kept)."
    )
    backtest_heartbeat_s: float = setting(
        1.0, "Seconds between saves of each unfinished run's progress (its heartbeat)."
    )
    backtest_orphan_after_s: float = setting(
        60.0,
        "An unfinished run whose heartbeat is older than this is failed: its process died.",
    )
