"""The fill engine's core: resting orders meet the market and fill, one order at a time.

An order that can act is put to work (`_place`): IOC and FOK fill at once or
close, the rest rest where the next tick can reach them (`_rest`). A tick fills
market orders, then marketable limits, against the quote, each as far as the
quote allows (`_fill_now`: price from `fill_model`, size from the order and, if
the model says so, the displayed size). Every fill goes through `_record`, which
applies what it sets off in a contingent group at once (`fill_state`'s `_apply`):
an exit's fill cancels its sibling before the same tick can fill it, while the
legs an entry releases start working only after the tick's matching
(`_release_pending`).

The public API is `fills.FillEngine`'s; this module mutates the `Order`s it holds
and appends the events the edge must persist. No ledger, no I/O.
"""

from __future__ import annotations

from decimal import Decimal

from cift.trading.book import SymbolBook
from cift.trading.fill_events import (
    EngineEvent,
    Fill,
    FillExplanation,
    LegReleased,
    OrderTriggered,
    PriceSource,
)
from cift.trading.fill_model import round_down_to, working_limit
from cift.trading.fill_state import EngineState
from cift.trading.fill_triggers import armed, wait_for_trigger
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

# Enum members read once: an enum class attribute costs far more than a global.
_BUY, _QUOTE = Side.BUY, PriceSource.QUOTE


class MatchingCore(EngineState):
    """The matching: orders put to work, triggered, and filled against the market."""

    def _place(self, order: Order, now_ns: int, events: list[EngineEvent]) -> None:
        book = self._book(order.symbol)
        tif = order.time_in_force
        if tif is TimeInForce.FOK and not self._can_fill_entirely(book, order):
            reason = "fill-or-kill order could not be filled entirely at once"
            self._close(book, order, OrderStatus.CANCELED, reason, now_ns, events)
            return
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._fill_now(book, order, now_ns, events)
            if order.is_open:
                reason = "immediate-or-cancel remainder canceled"
                self._close(book, order, OrderStatus.CANCELED, reason, now_ns, events)
            else:
                self._finish(book, order)
            return
        self._rest(book, order, now_ns, events)

    # ---- resting, triggering, matching ------------------------------------------

    def _rest(self, book: SymbolBook, order: Order, now_ns: int, events: list[EngineEvent]) -> None:
        """Index an order where it can act, then let it act on the market as it stands."""
        kind = order.order_type
        if kind is OrderType.MARKET or (order.triggered and kind is not OrderType.STOP_LIMIT):
            book.enqueue_market(order.side, order.order_id)
            self._drain_market(book, order.side, now_ns, events)
        elif kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and order.triggered):
            assert order.limit_price is not None
            ladder = book.buy_limits if order.side is Side.BUY else book.sell_limits
            ladder.add(order.limit_price, self._next_seq(), order.order_id)
            self._match_limits(book, order.side, now_ns, events)
        else:
            sell_ref, buy_ref = self._refs(book)
            wait_for_trigger(book, order, self._next_seq(), sell_ref, buy_ref)
            if kind is not OrderType.TRAILING_STOP:
                self._check_triggers(book, sell_ref, buy_ref, now_ns, events)

    def _check_triggers(
        self,
        book: SymbolBook,
        sell_ref: Decimal | None,
        buy_ref: Decimal | None,
        now_ns: int,
        events: list[EngineEvent],
    ) -> None:
        for order_id, water_mark in armed(book, sell_ref, buy_ref):
            order = self._orders.get(order_id)
            if order is None:
                continue  # canceled by its OCO sibling's fill earlier in this tick
            order.trigger(water_mark)
            events.append(OrderTriggered(order_id, order.account_id, now_ns, water_mark))
            self._rest(book, order, now_ns, events)

    def _match(self, book: SymbolBook, now_ns: int, events: list[EngineEvent]) -> None:
        if book.buy_market:
            self._drain_market(book, Side.BUY, now_ns, events)
        if book.sell_market:
            self._drain_market(book, Side.SELL, now_ns, events)
        self._match_limits(book, Side.BUY, now_ns, events)
        self._match_limits(book, Side.SELL, now_ns, events)

    def _drain_market(
        self, book: SymbolBook, side: Side, now_ns: int, events: list[EngineEvent]
    ) -> None:
        queue = book.buy_market if side is Side.BUY else book.sell_market
        while queue:
            order = self._orders[queue[0]]
            self._fill_now(book, order, now_ns, events)
            if order.is_open:
                return  # no quote on this side yet, or its displayed size is used up
            self._finish(book, order)

    def _match_limits(
        self, book: SymbolBook, side: Side, now_ns: int, events: list[EngineEvent]
    ) -> None:
        if side is Side.BUY:
            ladder, price = book.buy_limits, book.ask
        else:
            ladder, price = book.sell_limits, book.bid
        if price is None:
            return
        while (best := ladder.best()) is not None:
            limit, order_id = best
            if (limit < price) if side is Side.BUY else (limit > price):
                return
            order = self._orders[order_id]
            self._fill_now(book, order, now_ns, events)
            if order.is_open:
                return
            self._finish(book, order)

    # ---- filling -----------------------------------------------------------------

    def _fill_now(
        self, book: SymbolBook, order: Order, now_ns: int, events: list[EngineEvent]
    ) -> None:
        """Fill as much of `order` as the current quote allows (possibly nothing)."""
        buy = order.side is _BUY
        quote_price = book.ask if buy else book.bid
        if quote_price is None:
            return
        limit = working_limit(order)
        if limit is not None and (quote_price > limit if buy else quote_price < limit):
            return
        instrument = self._instruments[order.symbol]
        step = instrument.qty_increment
        price = self._pricer.price(order.side, quote_price, limit, instrument.tick_size)
        remaining_notional = order.remaining_notional
        if remaining_notional is None:
            remaining = order.remaining_qty
            assert remaining is not None
            qty = remaining
        else:
            qty = round_down_to(remaining_notional / price, step)
            if qty <= 0:
                # The dollars left cannot buy one increment at this price: a notional
                # order that bought something is done, one that bought nothing is void.
                if order.filled_qty > 0:
                    status, reason = OrderStatus.FILLED, "notional amount used up"
                else:
                    status = OrderStatus.CANCELED
                    reason = "notional amount buys less than the smallest quantity increment"
                self._close(book, order, status, reason, now_ns, events)
                return
        available = None
        if self._displayed:
            available = round_down_to(book.ask_left if buy else book.bid_left, step)
            if available <= 0:
                return
            if available < qty:
                qty = available
        completes = False
        if remaining_notional is not None:
            completes = remaining_notional - qty * price < price * step
        # Positional, in the parameters' order: once per fill.
        explanation = self._pricer.explain(
            _QUOTE, quote_price, self._quotes.get(order.symbol), None, limit, available
        )
        self._record(book, order, qty, price, now_ns, events, explanation, completes)

    def _can_fill_entirely(self, book: SymbolBook, order: Order) -> bool:
        buy = order.side is Side.BUY
        quote_price = book.ask if buy else book.bid
        if quote_price is None:
            return False
        limit = working_limit(order)
        if limit is not None and (quote_price > limit if buy else quote_price < limit):
            return False
        if not self._displayed:
            return True
        remaining = order.remaining_qty
        return remaining is not None and (book.ask_left if buy else book.bid_left) >= remaining

    def _record(
        self,
        book: SymbolBook,
        order: Order,
        qty: Decimal,
        price: Decimal,
        now_ns: int,
        events: list[EngineEvent],
        explanation: FillExplanation,
        completes: bool = False,
        takes_quote_size: bool = True,
    ) -> None:
        """Count a fill on `order`, report it, and apply what it sets off in its group.

        An auction cross is liquidity of its own: it leaves the quote's displayed
        size (`takes_quote_size=False`) to the orders that trade against the quote.
        """
        order.record_fill(qty, price, now_ns, completes)
        if takes_quote_size and order.side is _BUY:
            book.ask_left -= qty
        elif takes_quote_size:
            book.bid_left -= qty
        order_id = order.order_id
        events.append(
            Fill(  # positional, in the field order: once per fill
                f"{order_id}-{order.fill_count}",
                order_id,
                order.account_id,
                order.symbol,
                order.side,
                qty,
                price,
                self._pricer.commission(qty, price),
                now_ns,
                order.status,
                order.filled_qty,
                order.filled_notional,
                order.fill_count,
                explanation,
            )
        )
        if order_id in self.contingent.member_ids:
            actions = self.contingent.on_fill(order.order_id, qty, completes=not order.is_open)
            self._apply(actions, now_ns, events)

    def _release_pending(self, now_ns: int, events: list[EngineEvent]) -> None:
        """Put released legs to work (or grow working ones); they may fill at once."""
        releases = self._releases
        while releases:
            release = releases.pop(0)
            leg = self._held.pop(release.order_id, None)
            if leg is not None:
                leg.release(release.qty, now_ns)
                events.append(LegReleased(leg.order_id, leg.account_id, release.qty, now_ns))
                self._enter(leg)
                self._place(leg, now_ns, events)
                continue
            working = self._orders.get(release.order_id)
            if working is not None and working.qty is not None:
                working.grow(release.qty)
                events.append(
                    LegReleased(working.order_id, working.account_id, working.qty, now_ns)
                )
