"""The paper account behind the event engine: bars replayed as ticks into the live fill model.

Each bar is replayed as ticks into `cift.trading.fills.FillEngine`, the engine the
execution service runs live: first the open (a quote at the open, then a trade at
it), then the two extremes — low first when the bar closed up, high first when it
closed down — then the close. Orders a strategy places at a bar's close enter the
book right after the next bar's open, so market orders fill at that open, and a
limit, stop, stop-limit or trailing stop triggers and fills exactly where the paper
account would on those ticks (a gap fills at the gapped price, never at the limit).
Fills settle in `cift.trading.ledger.Ledger` in exact Decimal cents, commission
(rounded to the cent per fill, as the live account charges it) included.
Before an order enters the book it takes the live pre-trade path (pretrade.py):
its buying-power reservation, then the risk service's rules; a refused order is
rejected there and never reaches the fill engine.

An order without a quantity trades all of its symbol's sleeve (an equal share of
the starting cash, plus what the symbol has made since), in whole shares, sized
when it enters the book, as the vector engine sizes its trades. A bar with nothing
resting and nothing to enter is not replayed at all: it cannot fill anything.
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
from cift.backtest.trades import FillColumns, FillRow, closed_trades
from cift.runtime.errors import InvalidArgument
from cift.trading.fast_fill import fill_market_now
from cift.trading.fills import (
    CommissionModel,
    EngineEvent,
    Fill,
    FillEngine,
    FillModel,
    OrderClosed,
    Quote,
    Trade,
)
from cift.trading.ledger import Ledger
from cift.trading.orders import Order, OrderStatus
from cift.trading.pretrade.limits import RiskLimits
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

# Enum members read once: an enum class attribute costs far more than a global.
_BUY, _SELL, _MARKET, _IOC = Side.BUY, Side.SELL, OrderType.MARKET, TimeInForce.IOC
_NEW, _ACCEPTED, _FILLED = OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED

ACCOUNT = "backtest"
BPS = Decimal(10_000)
ZERO = Decimal(0)
# Displayed size of the replayed quotes: bars carry no depth, so a bar's price is
# taken to be there for any size (as every bar-based backtester assumes).
DEPTH = Decimal(10) ** 12
# Prices of a bar are used as given: a tick grid finer than any feed's.
TICK = Decimal("0.000001")
FULL_EQUITY = 1.0 - 2.0**-52


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
    # Every fill, exact, for the curves and the trades: turned into floats once, at
    # the end (`curves`, `trades`), not per fill.
    fills: list[FillRow] | None = None


class EventBroker:
    """The fill engine, the ledger and the bar replay behind a Strategy."""

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

    # ---- orders from the strategy ---------------------------------------------------

    def place(
        self,
        side: Side,
        symbol: str,
        qty: float | None,
        *,
        limit: float | None = None,
        stop: float | None = None,
        trail_price: float | None = None,
        trail_percent: float | None = None,
        take_profit: float | None = None,
        stop_loss: float | None = None,
        time_in_force: str = "gtc",
    ) -> str:
        state = self._state(symbol)
        if qty is not None and not (math.isfinite(qty) and qty > 0 and float(qty).is_integer()):
            raise InvalidArgument(
                f"An order's qty is a positive whole number of shares, not {qty}."
            )
        try:
            tif = TimeInForce(time_in_force)
        except ValueError:
            raise InvalidArgument(f"Unknown time_in_force {time_in_force!r}.") from None
        order = self._order(
            side,
            symbol,
            None if qty is None else Decimal(int(qty)),
            order_type(limit, stop, trail_price, trail_percent),
            tif,
            limit=limit,
            stop=stop,
            trail_price=trail_price,
            trail_percent=trail_percent,
        )
        state.pending.append(
            Pending(
                symbol,
                order,
                all_in=qty is None,
                take_profit=None if take_profit is None else to_decimal(take_profit),
                stop_loss=None if stop_loss is None else to_decimal(stop_loss),
            )
        )
        return order.order_id

    def close_position(self, symbol: str) -> None:
        self._state(symbol).pending.append(Pending(symbol, None))

    def target(self, symbol: str, sign: int) -> None:
        """At the next open, hold all of the sleeve long (1), short (-1) or nothing (0).

        A market order goes from what is held to the target; a reversal is two, the
        close and then the new side sized on the cash the close leaves, because a
        cash account refuses one order through zero (see `_enter`).
        """
        self._state(symbol).pending.append(Pending(symbol, None, False, sign))  # positional

    def cancel(self, order_id: str) -> bool:
        for state in self.symbols.values():
            for item in state.pending:
                if item.order is not None and item.order.order_id == order_id:
                    state.pending.remove(item)
                    return True
        order = self.fills.remove(order_id)
        if order is None:
            return False
        order.transition(OrderStatus.CANCELED, self._now_ns, "canceled by the strategy")
        self._forget(order_id, order.symbol)
        return True

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

    # ---- replay ---------------------------------------------------------------------

    def replay_bar(self, symbol: str, i: int, ts_ns: int) -> None:
        """Replay bar `i` of `symbol` as ticks, entering pending orders after its open."""
        state = self.symbols[symbol]
        state.bar = i
        if not state.pending and not state.open_ids:
            return
        self._now_ns = ts_ns
        bars = state.bars
        o = bars.open[i]
        self._tick(symbol, o, ts_ns)
        pending, state.pending = state.pending, []
        sizing_price = float(o)  # float arithmetic, not NumPy scalar arithmetic: the same values
        for item in pending:
            self._enter(state, item, sizing_price)
        if not state.open_ids:
            return  # nothing rests: the rest of the bar cannot fill anything
        h, low, c = bars.high[i], bars.low[i], bars.close[i]
        last = o
        for price in (low, h, c) if c >= o else (h, low, c):
            if not state.open_ids:
                break
            self._walk(state, last, price, ts_ns)
            last = price

    def _walk(self, state: SymbolState, start: float, end: float, ts_ns: int) -> None:
        """Move the price from `start` to `end` as a continuous market would.

        Inside a bar the price passes every level between two ticks, so each resting
        order's price on the way (a limit, a stop, a trailing stop's trigger) gets a
        tick of its own: a buy limit at 98 on a fall from 100 to 97 fills at 98, as
        it would have, not at 97. Levels are re-read after each tick, since a fill
        can place new orders (a bracket's exits).
        """
        symbol = state.bars.symbol
        rising = end > start
        current: float | Decimal = start
        while state.open_ids:
            levels = [
                level
                for level in self._levels(state)
                if (current < level < end if rising else end < level < current)
            ]
            if not levels:
                break
            current = min(levels) if rising else max(levels)
            self._tick(symbol, current, ts_ns)
        self._tick(symbol, end, ts_ns)

    def _levels(self, state: SymbolState) -> list[Decimal]:
        """Prices at which a resting order of the symbol would trigger or fill."""
        levels = []
        for order_id in state.open_ids:
            order = self.fills.get(order_id)
            if order is None:
                continue
            kind = order.order_type
            if kind is OrderType.TRAILING_STOP:
                mark = self.fills.water_mark(order_id)
                if mark is None:
                    continue
                sell = order.side is Side.SELL
                if order.trail_price is not None:
                    level = mark - order.trail_price if sell else mark + order.trail_price
                else:
                    assert order.trail_percent is not None
                    step = mark * order.trail_percent / 100
                    level = mark - step if sell else mark + step
                levels.append(level)
            elif order.stop_price is not None and not order.triggered:
                levels.append(order.stop_price)
            elif order.limit_price is not None:
                levels.append(order.limit_price)
        return levels

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

    def _tick(self, symbol: str, price: float | Decimal, ts_ns: int) -> None:
        if isinstance(price, Decimal):
            p = price
        else:
            known = self._decimals.get(price)
            p = known if known is not None else self._decimals.setdefault(price, to_decimal(price))
        if self.tape is not None:
            self.tape.append(TapeTick(symbol, ts_ns, p))
        events = self.fills.on_quote(Quote(symbol, p, p, DEPTH, DEPTH, ts_ns))
        if events:
            self._apply(events)
        events = self.fills.on_trade(Trade(symbol, p, DEPTH, ts_ns))
        if events:
            self._apply(events)

    def _enter(self, state: SymbolState, item: Pending, open_price: float) -> None:
        order = item.order
        symbol = state.bars.symbol
        if order is None:
            held = self.position(symbol)
            goal = (
                ZERO
                if item.target is None
                else self._target_shares(state, held, item.target, open_price)
            )
            if goal == held:
                return
            if held and goal and (goal > ZERO) != (held > ZERO):
                # A reversal is the close, then the new position: on a cash account
                # one order through zero would need buying power for the new side
                # before the close frees any, and the live account refuses it.
                if not self._market(symbol, -held):
                    return  # the close was refused: the new side would be on top of it
                held = ZERO
            self._market(symbol, goal - held)
            return
        if item.all_in:
            shares = self._all_in_shares(state, open_price)
            if shares <= 0:
                return  # nothing affordable: dropped, as a broker refuses an unfunded order
            order.qty = Decimal(shares)
        if item.take_profit is not None or item.stop_loss is not None:
            self.brackets[order.order_id] = (item.take_profit, item.stop_loss)
        if not self._add(order):
            self.brackets.pop(order.order_id, None)

    def _market(self, symbol: str, qty: Decimal) -> bool:
        """A market order for `qty` shares (negative: sell) at the quote just replayed.

        At the open the replayed quote has room for any size, so it fills entirely
        at once: immediate-or-cancel says so, and lets the fill engine skip the
        resting-order bookkeeping (`fill_market_now`) on the way to the same fill.
        """
        if qty < ZERO:
            return self._add(self._order(_SELL, symbol, -qty, _MARKET, _IOC))
        return self._add(self._order(_BUY, symbol, qty, _MARKET, _IOC))

    def _add(self, order: Order, *, checked: bool = True) -> bool:
        """Through the pre-trade gate (unless a bracket's exit leg) into the fill engine."""
        symbol = order.symbol
        state = self.symbols[symbol]
        if checked and not self.gate.admit(
            order, self.instruments[symbol], self.ledger, self.fills, state.bar, self._now_ns
        ):
            return False
        order.transition(_ACCEPTED, self._now_ns)
        if self.tape is not None:
            self.tape.append(order)
        if order.reserved:
            self.reserving[order.order_id] = order
        state.open_ids.add(order.order_id)
        if order.time_in_force is _IOC and order.order_type is _MARKET:
            self._apply(fill_market_now(self.fills, order, self._now_ns))
        else:
            self._apply(self.fills.add(order, self._now_ns))
        return True

    def _target_shares(self, state: SymbolState, held: Decimal, sign: int, price: float) -> Decimal:
        """Shares to hold for `sign` times the sleeve, keeping a position already on that side."""
        if sign == 0 or (held > ZERO if sign > 0 else held < ZERO):
            return held if sign else ZERO
        cash = float(state.sleeve_cash)
        if held:
            # The entry is sized on the cash the close leaves (its commission included).
            close = float(held) * price
            cash += close - abs(close) * self.commission_rate
        per_share = price + price * self.commission_rate
        shares = int(max(cash, 0.0) * FULL_EQUITY // per_share)
        return Decimal(sign * shares)

    def _all_in_shares(self, state: SymbolState, price: float) -> int:
        equity = float(state.sleeve_cash) + float(self.position(state.bars.symbol)) * price
        per_share = price + price * self.commission_rate
        return int(max(equity, 0.0) * FULL_EQUITY // per_share)

    def _apply(self, events: list[EngineEvent]) -> None:
        for event in events:
            if isinstance(event, Fill):
                self._settle(event)
            elif isinstance(event, OrderClosed):
                self._forget(event.order_id, symbol_of(event.order_id))

    def _forget(self, order_id: str, symbol: str) -> None:
        self.symbols[symbol].open_ids.discard(order_id)
        self.brackets.pop(order_id, None)
        order = self.reserving.pop(order_id, None)
        if order is not None:
            self.gate.on_close(order)

    def _settle(self, fill: Fill) -> None:
        if self.tape is not None:
            self.tape.append(fill)
        effect = self.ledger.apply_fill(
            fill.symbol, fill.side, fill.qty, fill.price, fill.commission
        )
        state = self.symbols[fill.symbol]
        state.sleeve_cash += effect.cash_delta
        assert state.fills is not None
        state.fills.append(
            (state.bar, fill.side is _BUY, fill.qty, fill.price, fill.commission,
             effect.position.qty, state.sleeve_cash)
        )  # fmt: skip
        order = self.reserving.get(fill.order_id)
        if order is not None:
            self.gate.on_fill(order, fill)
        if fill.order_status is _FILLED:
            self.reserving.pop(fill.order_id, None)
            state.open_ids.discard(fill.order_id)
            if self.siblings or self.brackets:  # else no bracket leg to place or cancel
                self._on_filled(fill)

    def _on_filled(self, fill: Fill) -> None:
        """Bracket legs: place the exits of a filled entry; a filled exit cancels its sibling."""
        for sibling in self.siblings.pop(fill.order_id, ()):
            self.siblings.pop(sibling, None)
            if self.fills.remove(sibling) is not None:
                self._forget(sibling, fill.symbol)
        legs = self.brackets.pop(fill.order_id, None)
        if legs is None:
            return
        take_profit, stop_loss = legs
        exit_side = Side.SELL if fill.side is Side.BUY else Side.BUY
        qty = fill.order_filled_qty
        children = []
        if take_profit is not None:
            children.append(
                self._order(exit_side, fill.symbol, qty, OrderType.LIMIT, TimeInForce.GTC,
                            limit=float(take_profit))
            )  # fmt: skip
        if stop_loss is not None:
            children.append(
                self._order(exit_side, fill.symbol, qty, OrderType.STOP, TimeInForce.GTC,
                            stop=float(stop_loss))
            )  # fmt: skip
        ids = [c.order_id for c in children]
        for child in children:
            self.siblings[child.order_id] = tuple(i for i in ids if i != child.order_id)
        for child in children:
            # An earlier leg may have filled at once and taken its sibling out already.
            if child.order_id in self.siblings or len(children) == 1:
                self._add(child, checked=False)  # live, a bracket's legs come with its entry

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
