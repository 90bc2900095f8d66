"""Round trips: fills grouped into the trades a backtest reports.

A trade opens when a symbol's position leaves zero and closes when it returns to
zero; a fill that crosses zero closes one trade and opens the next with the rest,
its commission split by quantity. Entry and exit prices are quantity-weighted
averages, so a position built or unwound in several fills reads as one trade.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat

import numpy as np
import numpy.typing as npt
import polars as pl

from cift.backtest.bars import F64, I64, SymbolBars
from cift.trading.fill_model import NO_COMMISSION


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
    """One symbol's round trips, fed every fill in order (floats, see `_Open`)."""

    bars: SymbolBars
    current: _Open | None = None
    closed: list[tuple[float, int, int, float, float, float]] = field(default_factory=list)

    def record(
        self, bar: int, buy: bool, qty: float, price: float, commission: float, after: float
    ) -> None:
        """One fill: `after` is the position it left, signed."""
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


# One fill as the broker logs it: (bar, buy, qty, price, commission, position after,
# sleeve cash after), exact. Logged as is, once per fill; turned into floats at the end.
FillRow = tuple[int, bool, Decimal, Decimal, Decimal, Decimal, Decimal]
FILL_FIELDS = 7  # a FillRow's length

# A symbol's fills: each one's FillRow fields, one fill after the other, in one flat
# list (`log.extend(row)`). A list of rows would keep a tuple per fill, each an object
# the garbage collector tracks until it next runs: tens of thousands of them set off
# collections, of the whole process's objects too, in the middle of a run; a row
# extended into the log is gone at once (no collection at all in a 1M-bar run).
FillLog = list[int | bool | Decimal]


@dataclass(frozen=True, slots=True)
class FillColumns:
    """A symbol's logged fills as columns, in floats: read by the curves and the trades."""

    bar: I64
    buy: npt.NDArray[np.bool_]
    qty: F64
    price: F64
    commission: F64
    after: F64  # the position each fill left
    sleeve: F64  # the sleeve's cash after each fill

    @classmethod
    def of(cls, log: FillLog) -> FillColumns:
        """Each Decimal through `float`, once, in one pass per column.

        A free commission model's fills all carry the one `NO_COMMISSION` object
        (0.00): that column is zeros without a conversion each.
        """
        n = len(log) // FILL_FIELDS

        def column(index: int) -> FillLog:
            return log[index::FILL_FIELDS]

        qty, price, after, sleeve = (
            np.fromiter(map(float, column(i)), np.float64, n) for i in (2, 3, 5, 6)
        )
        if all(map(operator.is_, column(4), repeat(NO_COMMISSION))):
            charged = np.zeros(n)  # float(Decimal("0.00")) is 0.0
        else:
            charged = np.fromiter(map(float, column(4)), np.float64, n)
        return cls(
            np.fromiter(column(0), np.int64, n),
            np.fromiter(column(1), np.bool_, n),
            qty,
            price,
            charged,
            after,
            sleeve,
        )


def closed_trades(bars: SymbolBars, fills: FillColumns) -> pl.DataFrame:
    """The round trips of a symbol's fills, as `TradeBook` fed them one by one reports them.

    When every trade is one entry fill from flat and one exit fill back to flat (a
    signal strategy's reversals are a close, then an open), the trades are pairs of
    consecutive fills, and the frame is made over whole columns with the same float
    operations `TradeBook.record` does per fill; otherwise it is `TradeBook`.
    """
    book = TradeBook(bars)
    n = len(fills.bar)
    if not n:
        return book.frame()
    bar, buy, qty, price, commission, after = (
        fills.bar, fills.buy, fills.qty, fills.price, fills.commission, fills.after
    )  # fmt: skip
    before = after - np.where(buy, qty, -qty)
    opens, closes = before == 0, after == 0
    if opens[0::2].all() and not closes[0::2].any() and closes[1::2].all():
        entry, exit_ = slice(0, n - n % 2, 2), slice(1, n, 2)
        closing = np.minimum(qty[exit_], np.abs(before[exit_]))
        return trade_frame(
            bars,
            size=np.where(buy[entry], qty[entry], -qty[entry]),
            entry_bar=bar[entry],
            exit_bar=bar[exit_],
            entry_price=price[entry],
            exit_price=price[exit_],
            commission=commission[entry] + commission[exit_] * closing / qty[exit_],
        )
    for row in zip(
        bar.tolist(), buy.tolist(), qty.tolist(), price.tolist(), commission.tolist(),
        after.tolist(), strict=True,
    ):  # fmt: skip
        book.record(*row)
    return book.frame()
