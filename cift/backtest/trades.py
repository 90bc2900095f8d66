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

# An enum class attribute costs far more than a global; this runs once per fill.
_BUY = Side.BUY


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
    """A trade being built, in floats: whole shares and cent prices add up exactly enough.

    An entry (or exit) made at one price keeps that price as given, so a one-fill
    trade reports its fill's price to the last bit, as the vector engine does.
    """

    sign: int
    entry_bar: int
    qty: float = 0.0
    entry_notional: float = 0.0
    entry_price: float | None = None  # the one price of every entry fill; None if several
    exit_qty: float = 0.0
    exit_notional: float = 0.0
    exit_price: float | None = None
    commission: float = 0.0


@dataclass(slots=True)
class TradeBook:
    """One symbol's round trips, fed every fill in order."""

    bars: SymbolBars
    current: _Open | None = None
    closed: list[tuple[float, int, int, float, float, float]] = field(default_factory=list)

    def record(self, fill: Fill, bar: int, position_after: Decimal) -> None:
        qty, price, commission = float(fill.qty), float(fill.price), float(fill.commission)
        buy = fill.side is _BUY
        after = float(position_after)
        before = after - (qty if buy else -qty)
        if before == 0:
            self._open(buy, bar, qty, price, commission)
            return
        trade = self.current
        assert trade is not None
        if (before > 0) == buy:
            trade.qty += qty
            trade.entry_notional += qty * price
            if trade.entry_price != price:
                trade.entry_price = None
            trade.commission += commission
            return
        closing = min(qty, abs(before))
        share = commission * closing / qty
        if trade.exit_qty == 0:
            trade.exit_price = price
        elif trade.exit_price != price:
            trade.exit_price = None
        trade.exit_qty += closing
        trade.exit_notional += closing * price
        trade.commission += share
        if after == 0 or (after > 0) != (before > 0):
            self._close(bar)
            if after != 0:
                self._open(buy, bar, qty - closing, price, commission - share)

    def _open(self, buy: bool, bar: int, qty: float, price: float, commission: float) -> None:
        self.current = _Open(
            sign=1 if buy else -1,
            entry_bar=bar,
            qty=qty,
            entry_notional=qty * price,
            entry_price=price,
            commission=commission,
        )

    def _close(self, bar: int) -> None:
        trade = self.current
        assert trade is not None
        entry = trade.entry_price
        exit_ = trade.exit_price
        self.closed.append(
            (
                trade.sign * trade.qty,
                trade.entry_bar,
                bar,
                entry if entry is not None else trade.entry_notional / trade.qty,
                exit_ if exit_ is not None else trade.exit_notional / trade.exit_qty,
                trade.commission,
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
