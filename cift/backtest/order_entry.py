"""The strategy's orders: taken at a bar's close, entered into the book at the next open.

`place`, `target`, `close_position` and `cancel` queue what the strategy asks for
(`Pending`); `_enter` turns each into orders right after its symbol's next open,
when the sizes that depend on the price are known: an order without a quantity
trades all of its symbol's sleeve (an equal share of the starting cash, plus what
the symbol has made since), in whole shares, as the vector engine sizes its trades
(`_all_in_shares`, `_target_shares`). No I/O.
"""

from __future__ import annotations

import math
from decimal import Decimal

from cift.backtest.account_state import ZERO, Pending, SymbolState, order_type, to_decimal
from cift.backtest.settlement import Settlement
from cift.backtest.vector import FULL_EQUITY  # both engines size an all-in trade alike
from cift.runtime.errors import InvalidArgument
from cift.trading.orders import OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

# Enum members read once: an enum class attribute costs far more than a global.
_BUY, _SELL, _MARKET, _IOC = Side.BUY, Side.SELL, OrderType.MARKET, TimeInForce.IOC


class OrderEntry(Settlement):
    """The strategy's orders, queued at a close and sized and entered at the next open."""

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
