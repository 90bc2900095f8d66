"""The paper fill model: when an order fills, how much, and at what price.

Given accepted orders and a stream of quotes and trades, `FillEngine` decides
fills the way a simple, honest paper broker would:

- market orders take the opposite side of the quote (buy at the ask, sell at the
  bid); optionally only up to the displayed size, the rest on later quotes, and
  optionally with slippage in basis points;
- limit orders fill when the opposite quote reaches the limit, at the quote price
  (so a marketable limit gets the better price), never worse than the limit;
- stops trigger when the last trade (or, configurably, the quote) crosses the
  stop, then behave as market (stop) or limit (stop-limit) orders; trailing stops
  trigger at their high/low-water mark minus the trail and then act as market;
- IOC fills what it can at once and cancels the rest, FOK fills entirely at once
  or not at all, day orders expire when the session closes (extended-hours ones
  when the post-market session does), gtd orders at their date;
- outside the regular session only extended-hours limits trade (pre- and
  post-market); the rest wait for the open (`set_phase`);
- opg and cls orders wait for the opening and closing auctions (auction.py);
- legs of bracket, OCO and OTO orders follow `contingent.py`: held legs are
  released by their entry's fills, and the cancellations an exit's fill sets off
  take effect before the same tick can fill the other exit.

Each fill carries its explanation: the tick it took its price from and the model
settings that made its price, size and commission (`fill_events.FillExplanation`).

The engine is split by job: `fill_events` (ticks in, events out), `fill_model`
(prices, commission, explanations), `fill_triggers` (stops), `fill_session`
(which orders the clock ends), `fill_state` (open orders, books, and an order's
way out), `fill_matching` (orders meeting the market),
`fill_clock` (auctions and expiries); this module is the engine's public face:
what is in the book, order entry and removal, and ticks.
The engine mutates the `Order`s it holds (fill progress, status) and returns the
events the edge must persist; it never touches the ledger or any I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from cift.runtime.errors import FailedPrecondition
from cift.trading.auction import SessionPhase
from cift.trading.fill_clock import ClockCore
from cift.trading.fill_events import (
    NO_OPEN_ORDERS,
    EngineEvent,
    Fill,
    FillExplanation,
    LegReleased,
    OpenOrders,
    OrderClosed,
    OrderTriggered,
    PriceSource,
    Quote,
    Trade,
)
from cift.trading.fill_model import (
    BPS,
    CommissionModel,
    FillModel,
    StopTrigger,
    round_down_to,
    round_up_to,
)
from cift.trading.orders import AUCTION_TIFS, Order, OrderClass, OrderStatus
from cift.trading.vocabulary import ZERO, Instrument, OrderType, Side, TimeInForce

__all__ = [
    "BPS",
    "CommissionModel",
    "EngineEvent",
    "Fill",
    "FillEngine",
    "FillExplanation",
    "FillModel",
    "LegReleased",
    "OpenOrders",
    "OrderClosed",
    "OrderTriggered",
    "PriceSource",
    "Quote",
    "SessionPhase",
    "StopTrigger",
    "Trade",
    "round_down_to",
    "round_up_to",
]


class FillEngine(ClockCore):
    """Every resting order of one execution process, and the fill decisions on each tick."""

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders or order_id in self._held

    def set_instrument(self, instrument: Instrument) -> None:
        self._instruments[instrument.symbol] = instrument

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id) or self._held.get(order_id)

    def open_orders(self) -> Iterator[Order]:
        return iter(list(self._orders.values()))

    def open_orders_of(self, account_id: str, symbol: str, *, excluding: str = "") -> OpenOrders:
        """The account's open orders, without `excluding` (the order a replace retires).

        Every open order of the process is here (execution is a singleton), so
        this answers what a scan of the orders table would, from memory. A
        notional order, whose share count is not known until it fills, counts
        no shares.
        """
        orders = self._by_account.get(account_id)
        if not orders:
            return NO_OPEN_ORDERS
        buy = sell = ZERO
        for order in orders.values():
            if order.symbol != symbol or order.order_id == excluding:
                continue
            remaining = order.remaining_qty or ZERO
            if order.side is Side.BUY:
                buy += remaining
            else:
                sell += remaining
        return OpenOrders(buy, sell, len(orders) - (excluding in orders))

    def last_prices(self, symbol: str) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        """(bid, ask, last trade) as the engine last saw them."""
        book = self._books.get(symbol)
        if book is None:
            return None, None, None
        return book.bid, book.ask, book.last_trade

    def water_mark(self, order_id: str) -> Decimal | None:
        order = self._orders.get(order_id)
        if order is None or order.order_type is not OrderType.TRAILING_STOP:
            return None
        book = self._book(order.symbol)
        for ladder in (
            book.buy_trail_price,
            book.buy_trail_percent,
            book.sell_trail_price,
            book.sell_trail_percent,
        ):
            mark = ladder.water_mark(order_id)
            if mark is not None:
                return mark
        return order.water_mark

    def take_water_marks(self) -> dict[str, Decimal]:
        """Water marks of resting trailing stops set or moved since the last call.

        The owner persists them (batched) so a restarted engine anchors each stop
        where the market had taken it, never looser. Orders that left the book
        since are dropped: their final state is recorded with their close.
        """
        moved = self._moved_water_marks
        taken = {oid: mark for oid, mark in moved.items() if oid in self._orders}
        moved.clear()
        return taken

    def unsaved_water_marks(self, marks: dict[str, Decimal]) -> None:
        """`take_water_marks`' answer could not be saved: offer it again at the next call,
        unless a mark moved since (the newer one is what to save)."""
        moved = self._moved_water_marks
        for order_id, mark in marks.items():
            moved.setdefault(order_id, mark)

    # ---- order entry and removal -------------------------------------------------

    def link(
        self,
        parent_id: str,
        order_class: OrderClass,
        leg_ids: list[str],
        *,
        open_ids: set[str] | None = None,
        exited: bool = False,
    ) -> None:
        """Group a parent and its legs before they enter (see `ContingentOrders.register`)."""
        self.contingent.register(parent_id, order_class, leg_ids, open_ids=open_ids, exited=exited)

    def add_group(self, parent: Order, legs: list[Order], now_ns: int) -> list[EngineEvent]:
        """Take an accepted parent and its legs (order_classes.accept_group set their statuses).

        A simple order with session terms (gtd, opg, cls, extended hours) comes through
        the same entry with no legs: it has no group and enters alone.
        """
        if parent.order_class is OrderClass.SIMPLE and not legs:
            return self.add(parent, now_ns)
        self.link(parent.order_id, parent.order_class, [leg.order_id for leg in legs])
        group = self.contingent.group_of(parent.order_id)
        assert group is not None
        events: list[EngineEvent] = []
        for order in [*legs, parent]:
            if order.status is OrderStatus.HELD:
                self.hold(order)
            elif group.exited:
                # An OCO exit filled on entering: its sibling never starts working.
                reason = "canceled because the other exit of its group filled"
                order.transition(OrderStatus.CANCELED, now_ns, reason)
                events.append(
                    OrderClosed(order.order_id, order.account_id, order.status, reason, now_ns)
                )
                self.contingent.on_close(order.order_id, order.status, ZERO)
            else:
                events += self.add(order, now_ns)
        return events

    def hold(self, order: Order) -> None:
        """Keep an exit leg (status held) until its entry's fills release it."""
        if order.status is not OrderStatus.HELD:
            raise FailedPrecondition(f"Order {order.order_id} is {order.status.value}, not held.")
        if order.order_id in self:
            raise FailedPrecondition(f"Order {order.order_id} is already in the book.")
        self._held[order.order_id] = order

    def replaced(self, old_id: str, successor: Order, now_ns: int) -> list[EngineEvent]:
        """Put `successor` where the removed `old_id` was: in its group, held or working."""
        self.contingent.replaced(old_id, successor.order_id)
        if successor.status is OrderStatus.HELD:
            self.hold(successor)
            return []
        return self.add(successor, now_ns)

    def add(self, order: Order, now_ns: int) -> list[EngineEvent]:
        """Take an accepted order; returns what happened to it at once (fills, IOC/FOK close)."""
        if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            raise FailedPrecondition(
                f"Order {order.order_id} is {order.status.value}; only accepted orders enter the book."
            )
        if order.order_id in self:
            raise FailedPrecondition(f"Order {order.order_id} is already in the book.")
        if order.symbol not in self._instruments:
            raise FailedPrecondition(f"No trading rules are known for {order.symbol}.")
        events: list[EngineEvent] = []
        self._enter(order)
        if order.time_in_force in AUCTION_TIFS:
            self._session.wait_for_auction(order)
            return events
        self._place(order, now_ns, events)
        if self._releases:
            self._release_pending(now_ns, events)
        return events

    def remove(self, order_id: str) -> Order | None:
        """Take an order out of the book (cancel, replace); the caller changes its status.

        Its legs are untouched: a cancel follows with `close_legs`, a replace with
        `replaced`.
        """
        held = self._held.pop(order_id, None)
        if held is not None:
            return held
        order = self._orders.get(order_id)
        if order is None:
            return None
        self._finish(self._book(order.symbol), order)
        return order

    def forget(self, order_ids: Iterable[str]) -> set[str]:
        """Drop orders, with the rest of their groups, as if never booked; returns the ids dropped.

        For orders whose events the edge could not persist: the engine moved on (a
        fill, a close, a release) and storage did not, so the engine's copy is wrong
        until storage's is loaded back the way a restart loads the book (`link`,
        `hold`, `add`). A whole group goes, so it comes back linked as one.
        """
        dropped: set[str] = set()
        pending = list(order_ids)
        while pending:
            order_id = pending.pop()
            if order_id in dropped:
                continue
            dropped.add(order_id)
            pending += self.contingent.members(order_id) - dropped
            self.contingent.forget(order_id)
            self.remove(order_id)
        return dropped

    def close_legs(self, order: Order, now_ns: int) -> list[EngineEvent]:
        """`order` was removed and closed (its status set): close what its group says follows."""
        events: list[EngineEvent] = []
        if order.order_id in self.contingent:
            actions = self.contingent.on_close(order.order_id, order.status, order.filled_qty)
            self._apply(actions, now_ns, events)
        return events

    # ---- market data -------------------------------------------------------------

    def on_quote(self, quote: Quote) -> list[EngineEvent]:
        book = self._books.get(quote.symbol)
        if book is None:
            book = self._book(quote.symbol)
        book.bid = quote.bid if quote.bid > ZERO else None
        book.ask = quote.ask if quote.ask > ZERO else None
        book.bid_left = quote.bid_size
        book.ask_left = quote.ask_size
        self._quotes[quote.symbol] = quote
        events: list[EngineEvent] = []
        if not book.locations:
            return events
        if self._session.phase is not SessionPhase.REGULAR:
            if self._session.phase.extended:
                self._match_extended(book, quote.ts_ns, events)
            return events
        if self._on_quote_triggers:
            self._check_triggers(book, book.bid, book.ask, quote.ts_ns, events)
        self._match(book, quote.ts_ns, events)
        if self._releases:
            self._release_pending(quote.ts_ns, events)
        return events

    def on_trade(self, trade: Trade) -> list[EngineEvent]:
        book = self._books.get(trade.symbol)
        if book is None:
            book = self._book(trade.symbol)
        book.last_trade = trade.price
        self._trades[trade.symbol] = trade
        events: list[EngineEvent] = []
        session = self._session
        if session.opening and session.waits_for_opening(trade.symbol):
            self._run_auction(
                TimeInForce.OPG, trade.symbol, trade.ts_ns, events, opening_print=trade
            )
        if book.locations and not self._on_quote_triggers and session.phase is SessionPhase.REGULAR:
            self._check_triggers(book, trade.price, trade.price, trade.ts_ns, events)
            if self._releases:
                self._release_pending(trade.ts_ns, events)
        return events
