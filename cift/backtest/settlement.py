"""An order into the fill engine, and what the fill engine says back, settled.

`_add` takes an order through the live pre-trade gate into the fill engine; every
event that comes back goes through `_apply`: a fill settles in the ledger in exact
Decimal cents and in its symbol's sleeve and fill log (`_settle`), an order leaving
the book gives back its buying power (`_forget`). A filled entry with a take-profit
or a stop-loss places those exit legs, one cancels the other (`_on_filled`), as the
paper account's bracket orders do. No I/O.
"""

from __future__ import annotations

from cift.backtest.account_state import AccountState, symbol_of
from cift.trading.fast_fill import fill_market_now
from cift.trading.fills import EngineEvent, Fill, OrderClosed
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

# Enum members read once: an enum class attribute costs far more than a global.
_BUY, _MARKET, _IOC = Side.BUY, OrderType.MARKET, TimeInForce.IOC
_ACCEPTED, _FILLED = OrderStatus.ACCEPTED, OrderStatus.FILLED


class Settlement(AccountState):
    """Orders into the fill engine, their fills into the ledger, bracket legs placed."""

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
        state.fills.extend(
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
