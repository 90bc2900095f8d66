"""Round trips: fills grouped into the trades a backtest reports.

A trade opens when a symbol's position leaves zero and closes when it returns to
zero; a fill that crosses zero closes one trade and opens the next with the rest,
its commission split by quantity. Entry and exit prices are quantity-weighted
averages, so a position built or unwound in several fills reads as one trade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import polars as pl

from cift.backtest.bars import F64, I64, SymbolBars
from cift.trading.fills import Fill
from cift.trading.vocabulary import Side

ZERO = Decimal(0)


def trade_frame(
    bars: SymbolBars,
    *,
    size: F64,
    entry_bar: I64,
    exit_bar: I64,
    entry_price: F64,
    exit_price: F64,
    commission: F64,
) -> pl.DataFrame:
    """Closed trades with P&L net of both commissions, as backtesting.py reports them."""
    pnl = size * (exit_price - entry_price) - commission
    with np.errstate(divide="ignore", invalid="ignore"):
        return_pct = (
            np.sign(size) * (exit_price / entry_price - 1)
            - commission / (np.abs(size) * entry_price)
        ) * 100
    return pl.DataFrame(
        {
            "symbol": pl.Series([bars.symbol] * len(size), dtype=pl.String),
            "size": size,
            "entry_bar": entry_bar,
            "exit_bar": exit_bar,
            "entry_time": bars.timestamp.gather(entry_bar),
            "exit_time": bars.timestamp.gather(exit_bar),
            "entry_price": entry_price,
            "exit_price": exit_price,
            "pnl": pnl,
            "return_pct": return_pct,
            "commission": commission,
        },
        schema_overrides={"size": pl.Float64, "entry_bar": pl.Int64, "exit_bar": pl.Int64},
    )


@dataclass(slots=True)
class _Open:
    sign: int
    entry_bar: int
    qty: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exit_qty: Decimal = ZERO
    exit_notional: Decimal = ZERO
    commission: Decimal = ZERO


@dataclass(slots=True)
class TradeBook:
    """One symbol's round trips, fed every fill in order."""

    bars: SymbolBars
    current: _Open | None = None
    closed: list[tuple[float, int, int, float, float, float]] = field(default_factory=list)

    def record(self, fill: Fill, bar: int, position_after: Decimal) -> None:
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        before = position_after - signed
        if before == 0:
            self._open(fill, bar, fill.qty, fill.commission)
            return
        trade = self.current
        assert trade is not None
        if (before > 0) == (signed > 0):
            trade.qty += fill.qty
            trade.entry_notional += fill.qty * fill.price
            trade.commission += fill.commission
            return
        closing = min(fill.qty, abs(before))
        share = fill.commission * closing / fill.qty
        trade.exit_qty += closing
        trade.exit_notional += closing * fill.price
        trade.commission += share
        if position_after == 0 or (position_after > 0) != (before > 0):
            self._close(bar)
            if position_after != 0:
                self._open(fill, bar, fill.qty - closing, fill.commission - share)

    def _open(self, fill: Fill, bar: int, qty: Decimal, commission: Decimal) -> None:
        self.current = _Open(
            sign=1 if fill.side is Side.BUY else -1,
            entry_bar=bar,
            qty=qty,
            entry_notional=qty * fill.price,
            commission=commission,
        )

    def _close(self, bar: int) -> None:
        trade = self.current
        assert trade is not None
        self.closed.append(
            (
                float(trade.sign * trade.qty),
                trade.entry_bar,
                bar,
                float(trade.entry_notional / trade.qty),
                float(trade.exit_notional / trade.exit_qty),
                float(trade.commission),
            )
        )
        self.current = None

    def frame(self) -> pl.DataFrame:
        columns = list(zip(*self.closed, strict=True)) if self.closed else [()] * 6
        return trade_frame(
            self.bars,
            size=np.asarray(columns[0], dtype=np.float64),
            entry_bar=np.asarray(columns[1], dtype=np.int64),
            exit_bar=np.asarray(columns[2], dtype=np.int64),
            entry_price=np.asarray(columns[3], dtype=np.float64),
            exit_price=np.asarray(columns[4], dtype=np.float64),
            commission=np.asarray(columns[5], dtype=np.float64),
        )
