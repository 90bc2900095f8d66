"""What a backtest returns, the same from both engines, and how symbols add up.

Several symbols trade side by side, each with an equal share of the starting cash
(its sleeve), so one symbol's losses never size another's orders; the account's
equity is the sum of the sleeves on the union of all bar timestamps, each sleeve
carried forward where its symbol has no bar.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cift.backtest.bars import F64, SymbolBars
from cift.backtest.stats import Stats, compute_stats


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """`stats` (a JSON-ready dict), closed `trades` and the per-bar `equity` curve.

    `rejections` (event engine): the orders the live pre-trade path refused, one row
    each (bar, time, order, reason, message); `stats["rejected_orders"]` counts them.
    """

    strategy: str
    params: dict[str, Any]
    engine: str
    stats: Stats
    trades: pl.DataFrame
    equity: pl.DataFrame  # timestamp, equity, drawdown_pct, and per-symbol position
    rejections: pl.DataFrame | None = None

    def to_dict(self, *, with_frames: bool = False) -> dict[str, Any]:
        """Plain values for JSON: the run, its stats, and optionally the two frames."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "params": self.params,
            "engine": self.engine,
            "stats": self.stats,
        }
        if with_frames:
            out["trades"] = json.loads(self.trades.write_json())
            out["equity"] = json.loads(self.equity.write_json())
        return out


@dataclass(frozen=True, slots=True)
class SymbolCurve:
    """One symbol's sleeve as an engine leaves it."""

    bars: SymbolBars
    equity: F64
    position: F64


def assemble(
    *,
    strategy: str,
    params: dict[str, Any],
    engine: str,
    curves: Sequence[SymbolCurve],
    trades: pl.DataFrame,
    commissions: float,
    first_trading_bar: int,
    rejections: pl.DataFrame | None = None,
) -> BacktestResult:
    """Join the sleeves into the account's equity curve and compute the stats."""
    if len(curves) == 1:
        curve = curves[0]
        equity_frame = pl.DataFrame(
            {
                "timestamp": curve.bars.timestamp,
                "equity": curve.equity,
                f"position_{curve.bars.symbol}": curve.position,
            }
        )
    else:
        equity_frame = _join_sleeves(curves)
    equity = equity_frame["equity"].to_numpy()
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, (equity / peak - 1.0) * 100, 0.0)
    equity_frame = equity_frame.with_columns(pl.Series("drawdown_pct", drawdown))
    trades = trades.sort("exit_bar", "symbol") if len(curves) > 1 else trades
    stats = compute_stats(
        timestamp=equity_frame["timestamp"],
        equity=equity,
        trades=_account_bars(trades, equity_frame, curves),
        close=curves[0].bars.close,
        commissions=commissions,
        first_trading_bar=first_trading_bar,
    )
    if rejections is not None:
        stats["rejected_orders"] = rejections.height
    return BacktestResult(strategy, params, engine, stats, trades, equity_frame, rejections)


def _join_sleeves(curves: Sequence[SymbolCurve]) -> pl.DataFrame:
    frames = [
        pl.DataFrame(
            {
                "timestamp": c.bars.timestamp,
                f"equity_{c.bars.symbol}": c.equity,
                f"position_{c.bars.symbol}": c.position,
            }
        )
        for c in curves
    ]
    joined = frames[0]
    for frame in frames[1:]:
        joined = joined.join(frame, on="timestamp", how="full", coalesce=True)
    joined = joined.sort("timestamp")
    fills = []
    for c in curves:
        sleeve_start = float(c.equity[0])
        fills.append(pl.col(f"equity_{c.bars.symbol}").forward_fill().fill_null(sleeve_start))
        fills.append(pl.col(f"position_{c.bars.symbol}").forward_fill().fill_null(0.0))
    joined = joined.with_columns(fills)
    total = pl.sum_horizontal([f"equity_{c.bars.symbol}" for c in curves]).alias("equity")
    return joined.with_columns(total).select(
        "timestamp", "equity", *(f"position_{c.bars.symbol}" for c in curves)
    )


def _account_bars(
    trades: pl.DataFrame, equity: pl.DataFrame, curves: Sequence[SymbolCurve]
) -> pl.DataFrame:
    """Trades with bar numbers on the account's timeline (for exposure), not the symbol's."""
    if len(curves) == 1:
        return trades
    ts = equity["timestamp"]
    return trades.with_columns(
        pl.Series("entry_bar", ts.search_sorted(trades["entry_time"]), dtype=pl.Int64),
        pl.Series("exit_bar", ts.search_sorted(trades["exit_time"]), dtype=pl.Int64),
    )
