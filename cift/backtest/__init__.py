"""Backtesting on history with the paper account's own fill model.

    from cift.backtest import run_backtest
    result = run_backtest(bars, "sma_cross", {"fast": 10, "slow": 30}, cash=10_000,
                          commission=0.002, engine="vector")
    result.stats["final_equity"], result.trades, result.equity

Two engines: "vector" (a signal per bar, compiled loop, fastest) and "event" (a
Strategy's `init`/`on_bar`, every order through `cift.trading`'s fill engine and
ledger, as the live paper account trades). Pure library code: no I/O besides
reading a bars file when asked (`read_bars`).
"""

from cift.backtest.api import ENGINES, BacktestCanceled, run_backtest
from cift.backtest.bars import SymbolBars, read_bars, split_bars
from cift.backtest.event import Strategy
from cift.backtest.result import BacktestResult
from cift.backtest.signals import BUILTINS, Param, SignalStrategy, builtin
from cift.backtest.stats import STAT_LABELS
from cift.backtest.sweep import sweep, walk_forward

__all__ = [
    "BUILTINS",
    "ENGINES",
    "STAT_LABELS",
    "BacktestCanceled",
    "BacktestResult",
    "Param",
    "SignalStrategy",
    "Strategy",
    "SymbolBars",
    "builtin",
    "read_bars",
    "run_backtest",
    "split_bars",
    "sweep",
    "walk_forward",
]
