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
- opg and cls orders wait for the opening and closing auctions (auction.py);
- legs of bracket, OCO and OTO orders follow `contingent.py`: held legs are
  released by their entry's fills, and the cancellations an exit's fill sets off
  take effect before the same tick can fill the other exit.

Fill prices are rounded to the tick size away from the trader (buys up, sells
down), because an off-grid price can only come from slippage or a feed and the
broker must not improve on the market; the limit then caps the result, so
rounding never makes a fill worse than its limit.

The engine mutates the `Order`s it holds (fill progress, status) and returns the
events the edge must persist; it never touches the ledger or any I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from cift.runtime.errors import FailedPrecondition
from cift.trading.auction import crosses
from cift.trading.book import SymbolBook
from cift.trading.contingent import CancelLeg, ContingentAction, ContingentOrders, ReleaseLeg
from cift.trading.orders import AUCTION_TIFS, HUNDRED, Order, OrderClass, OrderStatus
from cift.trading.vocabulary import ZERO, Instrument, OrderType, Side, TimeInForce, to_cents

BPS = Decimal(10000)


class StopTrigger(StrEnum):
    """Which price arms stops: the last trade (exchange practice) or the quote."""

    TRADE = "trade"
    QUOTE = "quote"


@dataclass(frozen=True, slots=True)
class CommissionModel:
    """Commission per fill: zero by default, or per share, or basis points of notional."""

    per_share: Decimal = ZERO
    bps: Decimal = ZERO

    def commission(self, qty: Decimal, price: Decimal) -> Decimal:
        amount = qty * self.per_share + qty * price * self.bps / BPS
        return to_cents(amount)


@dataclass(frozen=True, slots=True)
class FillModel:
    fill_at_displayed_size: bool = False
    slippage_bps: Decimal = ZERO
    stop_trigger: StopTrigger = StopTrigger.TRADE
    commission: CommissionModel = field(default_factory=CommissionModel)


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    price: Decimal
    size: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """An account's open orders as pre-trade checks see them."""

    buy_qty: Decimal  # unfilled shares of open buys in the symbol asked about
    sell_qty: Decimal  # the same for sells
    count: int  # open orders in every symbol


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, with the order's progress right after it (what the edge persists)."""

    fill_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    commission: Decimal
    ts_ns: int
    order_status: OrderStatus
    order_filled_qty: Decimal
    order_filled_notional: Decimal
    order_fill_count: int


@dataclass(frozen=True, slots=True)
class OrderClosed:
    """An order left the book without (further) fills: IOC remainder, FOK kill, expiry."""

    order_id: str
    account_id: str
    status: OrderStatus
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    """A stop, stop-limit or trailing stop armed; it now works as market or limit."""

    order_id: str
    account_id: str
    ts_ns: int
    water_mark: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LegReleased:
    """An exit leg entered the book (it was held) or grew: it now works for `qty` in all."""

    order_id: str
    account_id: str
    qty: Decimal
    ts_ns: int


EngineEvent = Fill | OrderClosed | OrderTriggered | LegReleased


def round_up_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_CEILING) * step


def round_down_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_FLOOR) * step


class FillEngine:
    """Every resting order of one execution process, and the fill decisions on each tick."""

    def __init__(self, model: FillModel | None = None) -> None:
        self.model = model or FillModel()
        self._orders: dict[str, Order] = {}
        self._by_account: dict[str, dict[str, Order]] = {}
        self._instruments: dict[str, Instrument] = {}
        self._books: dict[str, SymbolBook] = {}
        self._moved_water_marks: dict[str, Decimal] = {}
        self._day_orders: set[str] = set()
        self._extended_day_orders: set[str] = set()
        self._expiries: list[tuple[int, str]] = []  # (expire_ns, order id) of gtd orders
        # opg / cls orders by symbol, waiting for their auction (insertion ordered).
        self._auctions: dict[TimeInForce, dict[str, dict[str, None]]] = {
            tif: {} for tif in AUCTION_TIFS
        }
        self._opening = False  # the session opened: each symbol's next trade is its opening print
        self.contingent = ContingentOrders()
        self._held: dict[str, Order] = {}  # exit legs waiting for their entry
        self._releases: list[ReleaseLeg] = []
        self._seq = 0
        slip = self.model.slippage_bps / BPS
        self._buy_slip = 1 + slip
        self._sell_slip = 1 - slip
        self._displayed = self.model.fill_at_displayed_size
        self._on_quote_triggers = self.model.stop_trigger is StopTrigger.QUOTE

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
        orders = self._by_account.get(account_id, {})
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

    def _book(self, symbol: str) -> SymbolBook:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = SymbolBook(
                symbol, moved_water_marks=self._moved_water_marks
            )
        return book

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
        """Take an accepted parent and its legs (order_classes.accept_group set their statuses)."""
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
            auction = self._auctions[order.time_in_force]
            auction.setdefault(order.symbol, {})[order.order_id] = None
            return events
        self._place(order, now_ns, events)
        if self._releases:
            self._release_pending(now_ns, events)
        return events

    def _enter(self, order: Order) -> None:
        """Index an order as open (by id, account, expiry); `_place` puts it to work."""
        self._orders[order.order_id] = order
        self._by_account.setdefault(order.account_id, {})[order.order_id] = order
        if order.time_in_force is TimeInForce.DAY:
            day = self._extended_day_orders if order.extended_hours else self._day_orders
            day.add(order.order_id)
        elif order.expire_ns is not None:
            heapq.heappush(self._expiries, (order.expire_ns, order.order_id))

    def _place(self, order: Order, now_ns: int, events: list[EngineEvent]) -> None:
        book = self._book(order.symbol)
        tif = order.time_in_force
        if tif is TimeInForce.FOK and not self._can_fill_entirely(book, order):
            self._close(
                book,
                order,
                OrderStatus.CANCELED,
                "fill-or-kill order could not be filled entirely at once",
                now_ns,
                events,
            )
            return
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._fill_now(book, order, now_ns, events)
            if order.is_open:
                self._close(
                    book,
                    order,
                    OrderStatus.CANCELED,
                    "immediate-or-cancel remainder canceled",
                    now_ns,
                    events,
                )
            else:
                self._finish(book, order)
            return
        self._rest(book, order, now_ns, events)

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

    def close_legs(self, order: Order, now_ns: int) -> list[EngineEvent]:
        """`order` was removed and closed (its status set): close what its group says follows."""
        events: list[EngineEvent] = []
        if order.order_id in self.contingent:
            actions = self.contingent.on_close(order.order_id, order.status, order.filled_qty)
            self._apply(actions, now_ns, events)
        return events

    def open_session(self) -> None:
        """The session opened: each symbol's next trade prints its opening auction."""
        self._opening = True

    def close_session(self, now_ns: int, *, post_market: bool = False) -> list[EngineEvent]:
        """The regular session closed: run the closing auction, expire day orders.

        Extended-hours day orders stay until `post_market` (the post-market
        session's end), when they expire too.
        """
        events: list[EngineEvent] = []
        if post_market:
            expiring = self._extended_day_orders
        else:
            self._opening = False
            self._run_auction(TimeInForce.CLS, None, now_ns, events)
            # opg orders still here missed their opening print (no trade all session).
            for symbol in list(self._auctions[TimeInForce.OPG]):
                self._run_auction(TimeInForce.OPG, symbol, now_ns, events, price=None)
            expiring = self._day_orders
        for order_id in sorted(expiring):
            order = self._orders.get(order_id)
            if order is None:
                continue  # canceled along with an expiring parent
            self._close(
                self._book(order.symbol),
                order,
                OrderStatus.EXPIRED,
                "day order expired at the session close",
                now_ns,
                events,
            )
        return events

    def expire_due(self, now_ns: int) -> list[EngineEvent]:
        """Expire gtd orders whose date has come."""
        events: list[EngineEvent] = []
        expiries = self._expiries
        while expiries and expiries[0][0] <= now_ns:
            _, order_id = heapq.heappop(expiries)
            order = self._orders.get(order_id)
            if order is None:
                continue  # filled or canceled before its date
            self._close(
                self._book(order.symbol),
                order,
                OrderStatus.EXPIRED,
                "good-till-date order expired at its expire_at",
                now_ns,
                events,
            )
        return events

    def _run_auction(
        self,
        tif: TimeInForce,
        symbol: str | None,
        now_ns: int,
        events: list[EngineEvent],
        *,
        price: Decimal | None = None,
    ) -> None:
        """Cross the waiting `tif` orders of `symbol` (None: every symbol) at one price.

        The closing auction's price is each symbol's last trade. Orders that do not
        cross, or find no price, expire.
        """
        waiting = self._auctions[tif]
        name = "opening" if tif is TimeInForce.OPG else "closing"
        for sym in [symbol] if symbol is not None else list(waiting):
            ids = waiting.pop(sym, None)
            if not ids:
                continue
            book = self._book(sym)
            at = price if tif is TimeInForce.OPG else book.last_trade
            for order_id in ids:
                order = self._orders[order_id]
                if at is not None and crosses(order, at):
                    self._record(book, order, order.remaining_qty or ZERO, at, now_ns, events)
                    self._finish(book, order)
                    continue
                reason = (
                    f"did not cross in the {name} auction"
                    if at is None
                    else f"did not cross in the {name} auction at {at}"
                )
                self._close(book, order, OrderStatus.EXPIRED, reason, now_ns, events)

    # ---- market data -------------------------------------------------------------

    def on_quote(self, quote: Quote) -> list[EngineEvent]:
        book = self._books.get(quote.symbol)
        if book is None:
            book = self._book(quote.symbol)
        book.bid = quote.bid if quote.bid > 0 else None
        book.ask = quote.ask if quote.ask > 0 else None
        book.bid_left = quote.bid_size
        book.ask_left = quote.ask_size
        events: list[EngineEvent] = []
        if not book.locations:
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
        events: list[EngineEvent] = []
        if self._opening and trade.symbol in self._auctions[TimeInForce.OPG]:
            self._run_auction(TimeInForce.OPG, trade.symbol, trade.ts_ns, events, price=trade.price)
        if book.locations and not self._on_quote_triggers:
            self._check_triggers(book, trade.price, trade.price, trade.ts_ns, events)
            if self._releases:
                self._release_pending(trade.ts_ns, events)
        return events

    # ---- internals ---------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _refs(self, book: SymbolBook) -> tuple[Decimal | None, Decimal | None]:
        """Trigger reference prices (sell side, buy side)."""
        if self._on_quote_triggers:
            return book.bid, book.ask
        return book.last_trade, book.last_trade

    def _rest(self, book: SymbolBook, order: Order, now_ns: int, events: list[EngineEvent]) -> None:
        """Index an order where it can act, then let it act on the market as it stands."""
        kind = order.order_type
        buy = order.side is Side.BUY
        oid = order.order_id
        if kind is OrderType.MARKET or (order.triggered and kind is not OrderType.STOP_LIMIT):
            book.enqueue_market(order.side, oid)
            self._drain_market(book, order.side, now_ns, events)
        elif kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and order.triggered):
            assert order.limit_price is not None
            (book.buy_limits if buy else book.sell_limits).add(
                order.limit_price, self._next_seq(), oid
            )
            self._match_limits(book, order.side, now_ns, events)
        elif kind in (OrderType.STOP, OrderType.STOP_LIMIT):
            assert order.stop_price is not None
            (book.buy_stops if buy else book.sell_stops).add(
                order.stop_price, self._next_seq(), oid
            )
            sell_ref, buy_ref = self._refs(book)
            self._check_triggers(book, sell_ref, buy_ref, now_ns, events)
        else:
            sell_ref, buy_ref = self._refs(book)
            anchor = (
                order.water_mark if order.water_mark is not None else (buy_ref if buy else sell_ref)
            )
            if order.trail_price is not None:
                ladder = book.buy_trail_price if buy else book.sell_trail_price
                ladder.add(order.trail_price, self._next_seq(), oid, anchor)
            else:
                assert order.trail_percent is not None
                ladder = book.buy_trail_percent if buy else book.sell_trail_percent
                ladder.add(order.trail_percent / HUNDRED, self._next_seq(), oid, anchor)

    def _check_triggers(
        self,
        book: SymbolBook,
        sell_ref: Decimal | None,
        buy_ref: Decimal | None,
        now_ns: int,
        events: list[EngineEvent],
    ) -> None:
        triggered: list[tuple[str, Decimal | None]] = []
        if sell_ref is not None:
            ladder = book.sell_stops
            while (best := ladder.best()) is not None and sell_ref <= best[0]:
                triggered.append((ladder.pop_best(), None))
            triggered += book.sell_trail_price.on_price(sell_ref)
            triggered += book.sell_trail_percent.on_price(sell_ref)
        if buy_ref is not None:
            ladder = book.buy_stops
            while (best := ladder.best()) is not None and buy_ref >= best[0]:
                triggered.append((ladder.pop_best(), None))
            triggered += book.buy_trail_price.on_price(buy_ref)
            triggered += book.buy_trail_percent.on_price(buy_ref)
        for order_id, water_mark in triggered:
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

    def _fill_price(
        self, side: Side, quote_price: Decimal, limit: Decimal | None, tick: Decimal
    ) -> Decimal:
        if side is Side.BUY:
            price = round_up_to(quote_price * self._buy_slip, tick)
            return price if limit is None or price <= limit else limit
        price = round_down_to(quote_price * self._sell_slip, tick)
        if price <= 0:
            price = tick
        return price if limit is None or price >= limit else limit

    def _working_limit(self, order: Order) -> Decimal | None:
        if order.order_type is OrderType.LIMIT or order.order_type is OrderType.STOP_LIMIT:
            return order.limit_price
        return None

    def _fill_now(
        self, book: SymbolBook, order: Order, now_ns: int, events: list[EngineEvent]
    ) -> None:
        """Fill as much of `order` as the current quote allows (possibly nothing)."""
        buy = order.side is Side.BUY
        quote_price = book.ask if buy else book.bid
        if quote_price is None:
            return
        limit = self._working_limit(order)
        if limit is not None and (quote_price > limit if buy else quote_price < limit):
            return
        instrument = self._instruments[order.symbol]
        step = instrument.qty_increment
        price = self._fill_price(order.side, quote_price, limit, instrument.tick_size)
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
        if self._displayed:
            available = round_down_to(book.ask_left if buy else book.bid_left, step)
            if available <= 0:
                return
            if available < qty:
                qty = available
        completes = False
        if remaining_notional is not None:
            completes = remaining_notional - qty * price < price * step
        self._record(book, order, qty, price, now_ns, events, completes=completes)

    def _record(
        self,
        book: SymbolBook,
        order: Order,
        qty: Decimal,
        price: Decimal,
        now_ns: int,
        events: list[EngineEvent],
        *,
        completes: bool = False,
    ) -> None:
        """Count a fill on `order`, report it, and apply what it sets off in its group."""
        order.record_fill(qty, price, now_ns, completes=completes)
        if order.side is Side.BUY:
            book.ask_left -= qty
        else:
            book.bid_left -= qty
        events.append(
            Fill(
                fill_id=f"{order.order_id}-{order.fill_count}",
                order_id=order.order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                side=order.side,
                qty=qty,
                price=price,
                commission=self.model.commission.commission(qty, price),
                ts_ns=now_ns,
                order_status=order.status,
                order_filled_qty=order.filled_qty,
                order_filled_notional=order.filled_notional,
                order_fill_count=order.fill_count,
            )
        )
        if order.order_id in self.contingent:
            actions = self.contingent.on_fill(order.order_id, qty, completes=not order.is_open)
            self._apply(actions, now_ns, events)

    def _apply(
        self, actions: list[ContingentAction], now_ns: int, events: list[EngineEvent]
    ) -> None:
        """Cancel at once (so this tick cannot fill them); release after the tick's matching."""
        for action in actions:
            if isinstance(action, ReleaseLeg):
                self._releases.append(action)
                continue
            assert isinstance(action, CancelLeg)
            held = self._held.pop(action.order_id, None)
            if held is not None:
                held.transition(OrderStatus.CANCELED, now_ns, action.reason)
                events.append(
                    OrderClosed(
                        held.order_id, held.account_id, OrderStatus.CANCELED, action.reason, now_ns
                    )
                )
                self._apply(
                    self.contingent.on_close(held.order_id, held.status, ZERO), now_ns, events
                )
                continue
            order = self._orders.get(action.order_id)
            if order is not None:
                self._close(
                    self._book(order.symbol),
                    order,
                    OrderStatus.CANCELED,
                    action.reason,
                    now_ns,
                    events,
                )

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

    def _can_fill_entirely(self, book: SymbolBook, order: Order) -> bool:
        buy = order.side is Side.BUY
        quote_price = book.ask if buy else book.bid
        if quote_price is None:
            return False
        limit = self._working_limit(order)
        if limit is not None and (quote_price > limit if buy else quote_price < limit):
            return False
        if not self._displayed:
            return True
        remaining = order.remaining_qty
        return remaining is not None and (book.ask_left if buy else book.bid_left) >= remaining

    def _close(
        self,
        book: SymbolBook,
        order: Order,
        status: OrderStatus,
        reason: str,
        now_ns: int,
        events: list[EngineEvent],
    ) -> None:
        order.transition(status, now_ns, reason)
        events.append(OrderClosed(order.order_id, order.account_id, status, reason, now_ns))
        self._finish(book, order)
        if order.order_id in self.contingent:
            actions = self.contingent.on_close(order.order_id, status, order.filled_qty)
            self._apply(actions, now_ns, events)

    def _finish(self, book: SymbolBook, order: Order) -> None:
        book.discard(order.order_id)
        self._orders.pop(order.order_id, None)
        held = self._by_account.get(order.account_id)
        if held is not None:
            held.pop(order.order_id, None)
            if not held:
                del self._by_account[order.account_id]
        self._day_orders.discard(order.order_id)
        self._extended_day_orders.discard(order.order_id)
        auction = self._auctions.get(order.time_in_force)
        if auction is not None:
            waiting = auction.get(order.symbol)
            if waiting is not None:
                waiting.pop(order.order_id, None)
                if not waiting:
                    del auction[order.symbol]
