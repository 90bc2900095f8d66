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

The layers, each on the one before: `account_state.AccountState` (what they all
share), `settlement.Settlement` (an order into the fill engine, its fills into the
ledger, bracket legs), `order_entry.OrderEntry` (the strategy's orders, sized at the
next open) and `EventBroker` here (the bar replay). One object, so the per-tick and
per-order paths call methods of `self` with no hop between objects.
"""

from __future__ import annotations

from decimal import Decimal

from cift.backtest.account_state import (
    Pending,
    SymbolState,
    TapeEvent,
    TapeTick,
    order_type,
    symbol_of,
    to_decimal,
)
from cift.backtest.order_entry import OrderEntry
from cift.trading.fills import Quote, Trade
from cift.trading.vocabulary import OrderType, Side

__all__ = [
    "EventBroker",
    "Pending",
    "SymbolState",
    "TapeEvent",
    "TapeTick",
    "order_type",
    "symbol_of",
    "to_decimal",
]

# Displayed size of the replayed quotes: bars carry no depth, so a bar's price is
# taken to be there for any size (as every bar-based backtester assumes).
DEPTH = Decimal(10) ** 12


class EventBroker(OrderEntry):
    """The fill engine, the ledger and the bar replay behind a Strategy."""

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
