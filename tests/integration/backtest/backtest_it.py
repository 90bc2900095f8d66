"""What the backtest integration tests share: requests, waiting, and the library's answer."""

from __future__ import annotations

from typing import Any

import polars as pl

from cift.backtest import BacktestResult, run_backtest
from tests.e2e.e2e_client import Rest, eventually

Json = dict[str, Any]

# backtesting.py's SmaCross example on its GOOG data: 10/30, cash 10,000, 0.2 %.
SMA_CROSS: Json = {
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 30},
    "symbol": "GOOG",
    "timeframe": "1Day",
    "start": "2004-01-01T00:00:00Z",
    "end": "2014-01-01T00:00:00Z",
    "cash": "10000",
    "commission": "0.002",
}
FINISHED = ("BACKTEST_STATUS_SUCCEEDED", "BACKTEST_STATUS_FAILED", "BACKTEST_STATUS_CANCELED")


def library_result(bars: pl.DataFrame, engine: str = "vector") -> BacktestResult:
    """The same backtest run by the library in this process: what the service must report."""
    return run_backtest(
        bars, "sma_cross", {"fast": 10, "slow": 30}, cash=10_000, commission=0.002, engine=engine
    )


def finished(rest: Rest, token: str, backtest_id: str, timeout_s: float = 60.0) -> Json:
    """The backtest once it has ended, polled over REST."""

    def probe() -> Json | None:
        backtest: Json = rest.ok("GET", f"/v1/backtests/{backtest_id}", token=token)["backtest"]
        return backtest if backtest["status"] in FINISHED else None

    result: Json = eventually(probe, f"backtest {backtest_id} to finish", timeout_s)
    return result
