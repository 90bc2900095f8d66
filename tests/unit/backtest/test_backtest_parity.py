"""Parity with backtesting.py 0.6.6, run side by side on its own GOOG sample data.

The case is backtesting.py's SmaCross example (10/30 SMA, long/short reversal,
exclusive orders, next open, whole shares) with cash 10,000 and commission 0.2%.
The vector engine reproduces its trades and equity to the cent and its statistics
to float rounding. The event engine settles through the paper ledger, which rounds
each fill's commission to the cent: same trades, and equity lower by exactly what
that rounding charged more than the float model.
"""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
import pytest

from cift.backtest import builtin, run_backtest, split_bars
from cift.backtest.event import run_event
from cift.trading.fills import Fill
from cift.trading.vocabulary import to_cents

# our stats key -> backtesting.py's
SAME_STATS = {
    "final_equity": "Equity Final [$]",
    "peak_equity": "Equity Peak [$]",
    "total_return_pct": "Return [%]",
    "buy_hold_return_pct": "Buy & Hold Return [%]",
    "annual_return_pct": "Return (Ann.) [%]",
    "cagr_pct": "CAGR [%]",
    "volatility_pct": "Volatility (Ann.) [%]",
    "sharpe": "Sharpe Ratio",
    "sortino": "Sortino Ratio",
    "calmar": "Calmar Ratio",
    "max_drawdown_pct": "Max. Drawdown [%]",
    "avg_drawdown_pct": "Avg. Drawdown [%]",
    "exposure_pct": "Exposure Time [%]",
    "trades": "# Trades",
    "win_rate_pct": "Win Rate [%]",
    "best_trade_pct": "Best Trade [%]",
    "worst_trade_pct": "Worst Trade [%]",
    "avg_trade_pct": "Avg. Trade [%]",
    "profit_factor": "Profit Factor",
    "expectancy_pct": "Expectancy [%]",
    "sqn": "SQN",
}
DAY_STATS = {
    "max_drawdown_duration_days": "Max. Drawdown Duration",
    "avg_drawdown_duration_days": "Avg. Drawdown Duration",
    "max_trade_duration_days": "Max. Trade Duration",
    "avg_trade_duration_days": "Avg. Trade Duration",
}


def backtesting_py_sma_cross(data: Any) -> Any:
    """backtesting.py's SmaCross example (10/30) on `data`, a pandas OHLCV frame, with the
    parity case's cash, commission and exclusive orders: its stats."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):  # type: ignore[misc]
        fast = 10
        slow = 30

        def init(self) -> None:
            self.sma_fast = self.I(SMA, self.data.Close, self.fast)
            self.sma_slow = self.I(SMA, self.data.Close, self.slow)

        def next(self) -> None:
            if crossover(self.sma_fast, self.sma_slow):
                self.buy()
            elif crossover(self.sma_slow, self.sma_fast):
                self.sell()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, SmaCross, cash=10_000, commission=0.002, exclusive_orders=True)
        return bt.run()


@pytest.fixture(scope="module")
def theirs() -> Any:
    from backtesting.test import GOOG

    return backtesting_py_sma_cross(GOOG)


def run(goog: pl.DataFrame, engine: str) -> Any:
    return run_backtest(
        goog, "sma_cross", {"fast": 10, "slow": 30}, cash=10_000, commission=0.002, engine=engine
    )


def test_vector_engine_makes_backtesting_pys_trades(goog: pl.DataFrame, theirs: Any) -> None:
    ours = run(goog, "vector").trades
    their = theirs["_trades"]
    assert ours.height == len(their) == 65
    assert ours["entry_bar"].to_list() == their["EntryBar"].tolist()
    assert ours["exit_bar"].to_list() == their["ExitBar"].tolist()
    assert ours["size"].to_list() == their["Size"].astype(float).tolist()
    assert ours["entry_price"].to_list() == their["EntryPrice"].tolist()
    assert ours["exit_price"].to_list() == their["ExitPrice"].tolist()
    np.testing.assert_allclose(ours["pnl"].to_numpy(), their["PnL"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(
        ours["commission"].to_numpy(), their["Commission"].to_numpy(), atol=1e-6
    )


def test_vector_engine_ends_with_backtesting_pys_equity_to_the_cent(
    goog: pl.DataFrame, theirs: Any
) -> None:
    result = run(goog, "vector")
    assert round(result.stats["final_equity"], 2) == 39_770.03
    np.testing.assert_allclose(
        result.equity["equity"].to_numpy(), theirs["_equity_curve"]["Equity"].to_numpy(), atol=0.005
    )


def test_vector_engine_stats_are_backtesting_pys(goog: pl.DataFrame, theirs: Any) -> None:
    stats = run(goog, "vector").stats
    for ours, their in SAME_STATS.items():
        assert stats[ours] == pytest.approx(float(theirs[their]), rel=1e-9), ours
    for ours, their in DAY_STATS.items():
        assert stats[ours] == theirs[their].days, ours


def test_a_run_shorter_than_two_days_has_no_annual_figures_as_in_backtesting_py(
    goog: pl.DataFrame,
) -> None:
    """300 one-minute bars of one day: no daily return to annualize, so backtesting.py's
    annual return, volatility, Sharpe, Sortino and Calmar are NaN; ours are None (shown
    as "—"), not a 0 % that reads as a flat year."""
    import pandas as pd  # type: ignore[import-untyped]
    from backtesting.test import GOOG

    minutes = pd.date_range("2024-03-04 14:30", periods=300, freq="1min")
    their = backtesting_py_sma_cross(GOOG.iloc[:300].set_axis(minutes))
    bars = goog.head(300).with_columns(pl.Series("timestamp", minutes.to_numpy()))
    stats = run_backtest(
        bars, "sma_cross", {"fast": 10, "slow": 30}, cash=10_000, commission=0.002
    ).stats
    assert stats["trades"] == their["# Trades"] > 0
    assert stats["total_return_pct"] == pytest.approx(float(their["Return [%]"]), rel=1e-9)
    annual = ["annual_return_pct", "volatility_pct", "sharpe", "sortino", "calmar"]
    assert [math.isnan(float(their[SAME_STATS[key]])) for key in annual] == [True] * 5
    assert [stats[key] for key in annual] == [None] * 5


def test_commissions_include_the_open_trades_entry(goog: pl.DataFrame, theirs: Any) -> None:
    """backtesting.py counts closed trades' commissions only; we count every fill's."""
    result = run(goog, "vector")
    held = result.equity["position_ASSET"][-1]
    entry_open = goog["Open"][2088]  # the last reversal: long into the end from bar 2088
    assert held == 49
    open_entry = held * entry_open * 0.002
    assert result.stats["commissions"] == pytest.approx(
        float(theirs["Commissions [$]"]) + open_entry, abs=1e-6
    )


def test_event_engine_agrees_with_the_vector_engine(goog: pl.DataFrame) -> None:
    vector, event = run(goog, "vector"), run(goog, "event")
    columns = ["entry_bar", "exit_bar", "size", "entry_price", "exit_price"]
    assert event.trades.select(columns).equals(vector.trades.select(columns))
    np.testing.assert_array_equal(
        event.equity["position_ASSET"].to_numpy(), vector.equity["position_ASSET"].to_numpy()
    )
    assert event.stats["rejected_orders"] == 0
    # The ledger charges whole cents per fill; each trade's commission is within half
    # a cent of the float model's per fill (a trade has two).
    total = event.stats["commissions"]
    assert total == pytest.approx(round(total, 2), abs=1e-9)
    commissions = event.trades["commission"].to_numpy()
    np.testing.assert_allclose(commissions, vector.trades["commission"].to_numpy(), atol=0.01)


def test_event_engine_differs_by_the_cent_rounding_of_each_commission(goog: pl.DataFrame) -> None:
    """39,769.95 against 39,770.03: exactly what rounding 131 commissions to the cent took.

    Every fill's amount is exact (GOOG's prices are in cents, shares are whole), so the
    one difference from the float model is the commission, rounded half up to the
    cent per fill as the paper account charges it. A reversal is two fills (the
    close, then the open), 65 trades and the open one at the end make 131.
    """
    vector = run(goog, "vector")
    tape: list[Any] = []
    strategy = builtin("sma_cross")
    event = run_event(
        split_bars(goog), strategy, strategy.resolve({"fast": 10, "slow": 30}), 10_000, 0.002,
        None, tape=tape,
    )  # fmt: skip
    fills = [item for item in tape if isinstance(item, Fill)]
    assert len(fills) == 131
    assert all(f.qty * f.price == to_cents(f.qty * f.price) for f in fills)
    exact = sum((f.qty * f.price * Decimal("0.002") for f in fills), Decimal(0))
    charged = sum((f.commission for f in fills), Decimal(0))
    assert charged - exact == Decimal("0.08122")
    ours, theirs = event.stats["final_equity"], vector.stats["final_equity"]
    assert isinstance(ours, float) and isinstance(theirs, float)
    assert (round(theirs, 2), round(ours, 2)) == (39_770.03, 39_769.95)
    assert ours - theirs == pytest.approx(-float(charged - exact), abs=1e-6)
