"""The vector engine: targets → positions → equity in one compiled pass per symbol.

The broker model is the one quants check results against (backtesting.py's with
`exclusive_orders=True`, which vectorbt reproduces): a target set at a bar's close
is traded at the next bar's open; a change of direction first closes the whole
position, then opens the new one with all the equity there is, in whole shares,
after commission (`floor(equity * (1 - eps) / (open * (1 + commission)))`).
Commission is a fraction of each fill's notional, paid on entry and on exit. A
target on the last bar never trades (there is no next open). Equity is marked at
each close. Arithmetic is float64 in the same order as backtesting.py's, so the
two agree to the cent; the event engine is the one that keeps exact cents.

No Python runs per bar: the loop is Numba, trades are written to preallocated
arrays, and Polars frames are built once at the end.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from cift.backtest.bars import F64, I64, SymbolBars
from cift.backtest.trades import trade_frame

# backtesting.py's "all of the equity" is 1 - eps, so a rounding error never buys a
# share the cash cannot cover.
FULL_EQUITY = 1.0 - sys.float_info.epsilon


@dataclass(frozen=True, slots=True)
class SymbolRun:
    """One symbol's simulated book: equity and position per bar, and its closed trades."""

    bars: SymbolBars
    equity: F64
    position: F64  # shares held at each close (signed)
    trades: pl.DataFrame
    commissions: float


@njit(cache=True)
def _simulate(
    open_: F64,
    close: F64,
    targets: F64,
    cash: float,
    commission: float,
    equity: F64,
    position: F64,
    t_size: F64,
    t_entry_bar: I64,
    t_exit_bar: I64,
    t_entry_price: F64,
    t_exit_price: F64,
    t_commission: F64,
) -> tuple[int, float, float]:
    """Run one symbol; returns (closed trades written, final cash, commissions paid).

    `cash` here is backtesting.py's: equity less the open trade's unrealized P&L
    (what was put in, plus realized P&L, less commissions).
    """
    n = close.shape[0]
    size = 0.0
    entry_price = 0.0
    entry_bar = -1
    state = 0.0  # direction held: -1, 0 or 1
    pending = np.nan  # target decided at the last close, traded at this open
    trades = 0
    paid = 0.0
    for i in range(n):
        if not np.isnan(pending):
            want = pending
            pending = np.nan
            if want != state:
                price = open_[i]
                if size != 0.0:
                    exit_fee = abs(size) * price * commission
                    cash += size * (price - entry_price) - exit_fee
                    paid += exit_fee
                    t_size[trades] = size
                    t_entry_bar[trades] = entry_bar
                    t_exit_bar[trades] = i
                    t_entry_price[trades] = entry_price
                    t_exit_price[trades] = price
                    t_commission[trades] = exit_fee + abs(size) * entry_price * commission
                    trades += 1
                    size = 0.0
                    state = 0.0
                if want != 0.0:
                    per_share = price + FULL_EQUITY * price * commission / FULL_EQUITY
                    shares = (max(cash, 0.0) * FULL_EQUITY) // per_share
                    if shares >= 1.0:
                        size = shares if want > 0.0 else -shares
                        entry_price = price
                        entry_bar = i
                        entry_fee = shares * price * commission
                        cash -= entry_fee
                        paid += entry_fee
                        state = want
        equity[i] = cash + (close[i] * size - size * entry_price)
        position[i] = size
        target = targets[i]
        if not np.isnan(target):
            pending = 1.0 if target > 0.0 else (-1.0 if target < 0.0 else 0.0)
    return trades, cash, paid


def simulate(bars: SymbolBars, targets: F64, cash: float, commission: float) -> SymbolRun:
    """Trade `targets` on `bars` with `cash` to start; see the module docstring for the model."""
    n = len(bars)
    slots = int(np.count_nonzero(~np.isnan(targets))) + 1
    equity, position = np.empty(n), np.empty(n)
    t_size, t_entry_price, t_exit_price, t_commission = (np.empty(slots) for _ in range(4))
    t_entry_bar = np.empty(slots, dtype=np.int64)
    t_exit_bar = np.empty(slots, dtype=np.int64)
    count, _, paid = _simulate(
        bars.open,
        bars.close,
        np.ascontiguousarray(targets, dtype=np.float64),
        float(cash),
        float(commission),
        equity,
        position,
        t_size,
        t_entry_bar,
        t_exit_bar,
        t_entry_price,
        t_exit_price,
        t_commission,
    )
    trades = trade_frame(
        bars,
        size=t_size[:count],
        entry_bar=t_entry_bar[:count],
        exit_bar=t_exit_bar[:count],
        entry_price=t_entry_price[:count],
        exit_price=t_exit_price[:count],
        commission=t_commission[:count],
    )
    return SymbolRun(bars, equity, position, trades, paid)
