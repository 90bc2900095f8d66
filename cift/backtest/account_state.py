"""What every part of the backtest account shares, and the values it passes around.

`AccountState` holds the fill engine, the ledger, the pre-trade gate, each symbol's
book-keeping (`SymbolState`) and the bracket legs in flight; it builds the account's
orders (`_order`) and reads what the account holds (`position`, `equity`,
`results`). The layers on top of it change that state: `settlement.Settlement`
(an order into the fill engine, its fills into the ledger), `order_entry.OrderEntry`
(the strategy's orders, sized at the next open) and `broker.EventBroker` (bars
replayed as ticks). No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl

from cift.backtest.bars import F64, SymbolBars
from cift.backtest.pretrade import PreTradeGate
from cift.backtest.trades import FillColumns, FillLog, closed_trades
from cift.runtime.errors import InvalidArgument
from cift.trading.fills import CommissionModel, Fill, FillEngine, FillModel
from cift.trading.ledger import Ledger
from cift.trading.orders import Order, OrderStatus
from cift.trading.pretrade.limits import RiskLimits
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

_NEW = OrderStatus.NEW  # an enum class attribute costs far more than a global

ACCOUNT = "backtest"
BPS = Decimal(10_000)
ZERO = Decimal(0)
# Prices of a bar are used as given: a tick grid finer than any feed's.
TICK = Decimal("0.000001")


@dataclass(slots=True)
class Pending:
    """An order placed at a close, waiting for the next open of its symbol.

    `order` is None for "close the position" (`target` None) or "hold `target`
    times all of the sleeve" (-1, 0 or 1): its side and size are only known when it
    enters the book, after whatever filled before it.
    """

    symbol: str
    order: Order | None
    all_in: bool = False
    target: int | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TapeTick:
    """A price the replay handed the fill engine: a quote at it both sides, then a trade."""

    symbol: str
    ts_ns: int
    price: Decimal


# What the account saw and did, in order: every tick, every order as it entered the
# book, every fill. Replayed elsewhere (the paper account over the mesh), the same
# ticks with the same orders must give the same fills.
TapeEvent = TapeTick | Order | Fill


@dataclass(slots=True)
class SymbolState:
    """One symbol's book-keeping beside the shared ledger."""

    bars: SymbolBars
    start_cash: Decimal  # the symbol's equal share of the starting cash
    sleeve_cash: Decimal  # start_cash plus the cash deltas of this symbol's fills
    pending: list[Pending]
    open_ids: set[str]  # orders of this symbol resting in the fill engine
    bar: int = -1
    # Every fill, exact, for the curves and the trades (a FillLog: each fill's fields
    # in a row): turned into floats once, at the end (`results`), not per fill.
    fills: FillLog | None = None


class AccountState:
    """The fill engine, the ledger and each symbol's book-keeping behind a Strategy."""

    def __init__(
        self,
        per_symbol: Sequence[SymbolBars],
        cash: float,
        commission: float,
        *,
        limits: RiskLimits | None = None,
        margin_multiplier: Decimal = Decimal(1),
    ) -> None:
        self.fills = FillEngine(
            FillModel(commission=CommissionModel(bps=to_decimal(commission) * BPS))
        )
        self.commission_rate = commission
        self.ledger = Ledger(cash=to_decimal(cash))
        sleeve = to_decimal(cash / len(per_symbol))
        self.symbols = {
            b.symbol: SymbolState(b, sleeve, sleeve, [], set(), fills=[]) for b in per_symbol
        }
        self.instruments = {
            b.symbol: Instrument(b.symbol, TICK, Decimal(1), False) for b in per_symbol
        }
        for instrument in self.instruments.values():
            self.fills.set_instrument(instrument)
        self.gate = PreTradeGate(limits or RiskLimits(), margin_multiplier)
        self.reserving: dict[str, Order] = {}  # open orders holding buying power
        self.brackets: dict[str, tuple[Decimal | None, Decimal | None]] = {}  # entry id -> legs
        self.siblings: dict[str, tuple[str, ...]] = {}  # exit leg id -> the other leg (OCO)
        self._seq = 0
        self._now_ns = 0
        # Each bar price's Decimal, made once per run: prices in cents repeat often, and
        # `to_decimal` (repr, then parse) costs more than a tick's dict lookup.
        self._decimals: dict[float, Decimal] = {}
        self.tape: list[TapeEvent] | None = None  # a list to record the run into

    # ---- what the account holds -----------------------------------------------------

    def position(self, symbol: str) -> Decimal:
        return self.ledger.position(symbol).qty

    def equity(self) -> float:
        total = float(self.ledger.cash)
        for symbol, position in self.ledger.positions.items():
            if position.qty:
                state = self.symbols[symbol]
                total += float(position.qty) * float(state.bars.close[max(state.bar, 0)])
        return total

    def _state(self, symbol: str) -> SymbolState:
        state = self.symbols.get(symbol)
        if state is None:
            raise InvalidArgument(f"No bars for symbol {symbol!r} in this backtest.")
        return state

    def results(self, symbol: str) -> tuple[F64, F64, pl.DataFrame]:
        """(equity, position) at each close of the symbol's bars, and its closed trades."""
        state = self.symbols[symbol]
        bars = state.bars
        fills = FillColumns.of(state.fills or [])
        n = len(bars)
        position = np.zeros(n)
        sleeve = np.full(n, float(state.start_cash))
        if len(fills.bar):
            # A bar's close shows the state after its last fill; the earlier ones are passed.
            kept = np.flatnonzero(np.append(fills.bar[1:] != fills.bar[:-1], True))
            # Each bar takes the state after the last change at or before it.
            last = np.full(n, -1, dtype=np.int64)
            last[fills.bar[kept]] = kept
            last = np.maximum.accumulate(last)
            known = last >= 0
            position[known] = fills.after[last[known]]
            sleeve[known] = fills.sleeve[last[known]]
        return sleeve + position * bars.close, position, closed_trades(bars, fills)

    # ---- the account's orders -------------------------------------------------------

    def _order(
        self,
        side: Side,
        symbol: str,
        qty: Decimal | None,
        kind: OrderType,
        tif: TimeInForce,
        *,
        limit: float | None = None,
        stop: float | None = None,
        trail_price: float | None = None,
        trail_percent: float | None = None,
    ) -> Order:
        self._seq += 1
        now = self._now_ns
        return Order(  # positional, in Order's field order: once per order
            f"{symbol}:{self._seq}",
            ACCOUNT,
            symbol,
            side,
            kind,
            tif,
            qty,
            None,  # notional
            None if limit is None else to_decimal(limit),
            None if stop is None else to_decimal(stop),
            None if trail_price is None else to_decimal(trail_price),
            None if trail_percent is None else to_decimal(trail_percent),
            "",  # client_order_id
            now,  # created_ns
            _NEW,
            now,  # updated_ns
        )


def symbol_of(order_id: str) -> str:
    """Order ids here are `<symbol>:<sequence>`."""
    return order_id.rsplit(":", 1)[0]


def to_decimal(value: float) -> Decimal:
    """The shortest decimal that reads back as `value` (100.34, not 100.3400000000000034)."""
    return Decimal(repr(float(value)))


def order_type(
    limit: float | None, stop: float | None, trail_price: float | None, trail_percent: float | None
) -> OrderType:
    for name, price in (("limit", limit), ("stop", stop), ("trail_price", trail_price),
                        ("trail_percent", trail_percent)):  # fmt: skip
        if price is not None and not (math.isfinite(price) and price > 0):
            raise InvalidArgument(f"{name} must be a positive price, not {price}.")
    if trail_price is not None or trail_percent is not None:
        if limit is not None or stop is not None or (trail_price and trail_percent):
            raise InvalidArgument("A trailing stop takes one of trail_price or trail_percent only.")
        if trail_percent is not None and trail_percent >= 100:
            raise InvalidArgument("trail_percent must be below 100.")
        return OrderType.TRAILING_STOP
    if limit is not None and stop is not None:
        return OrderType.STOP_LIMIT
    if limit is not None:
        return OrderType.LIMIT
    if stop is not None:
        return OrderType.STOP
    return OrderType.MARKET
