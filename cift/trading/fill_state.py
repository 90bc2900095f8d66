"""The fill engine's state, and how an order enters and leaves it.

`EngineState` holds what every part of the engine shares: the open orders (by id
and by account), each symbol's book, the last tick per symbol, the contingent
groups and the exit legs held for their entry. An order leaving the book
(`_close`) may set off its group's cancellations (`_apply`), which take effect
at once, so the tick being matched cannot fill a canceled sibling; the legs it
releases wait in `_releases` until the tick's matching is done
(`fill_matching.MatchingCore._release_pending`). No ledger, no I/O.
"""

from __future__ import annotations

from decimal import Decimal

from cift.trading.book import SymbolBook
from cift.trading.contingent import CancelLeg, ContingentAction, ContingentOrders, ReleaseLeg
from cift.trading.fill_events import EngineEvent, OrderClosed, Quote, Trade
from cift.trading.fill_model import FillModel, FillPricer, StopTrigger
from cift.trading.fill_session import SessionOrders
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import ZERO, Instrument


class EngineState:
    """The state every part of the engine shares, and an order's way out of it."""

    def __init__(self, model: FillModel | None = None) -> None:
        self.model = model or FillModel()
        self._orders: dict[str, Order] = {}
        self._by_account: dict[str, dict[str, Order]] = {}
        self._instruments: dict[str, Instrument] = {}
        self._books: dict[str, SymbolBook] = {}
        self._quotes: dict[str, Quote] = {}  # last quote per symbol, named by fill explanations
        self._trades: dict[str, Trade] = {}  # last trade per symbol
        self._moved_water_marks: dict[str, Decimal] = {}
        self._session = SessionOrders()
        self.contingent = ContingentOrders()
        self._held: dict[str, Order] = {}  # exit legs waiting for their entry
        self._releases: list[ReleaseLeg] = []
        self._seq = 0
        self._pricer = FillPricer(self.model)
        self._displayed = self._pricer.displayed
        self._on_quote_triggers = self.model.stop_trigger is StopTrigger.QUOTE

    def _book(self, symbol: str) -> SymbolBook:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = SymbolBook(
                symbol, moved_water_marks=self._moved_water_marks
            )
        return book

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _refs(self, book: SymbolBook) -> tuple[Decimal | None, Decimal | None]:
        """Trigger reference prices (sell side, buy side)."""
        if self._on_quote_triggers:
            return book.bid, book.ask
        return book.last_trade, book.last_trade

    # ---- entering and leaving the book ------------------------------------------

    def _enter(self, order: Order) -> None:
        """Index an order as open (by id, account, clock event); `_place` puts it to work."""
        self._orders[order.order_id] = order
        self._by_account.setdefault(order.account_id, {})[order.order_id] = order
        self._session.enter(order)

    def _finish(self, book: SymbolBook, order: Order) -> None:
        book.discard(order.order_id)
        self._orders.pop(order.order_id, None)
        held = self._by_account.get(order.account_id)
        if held is not None:
            held.pop(order.order_id, None)
            if not held:
                del self._by_account[order.account_id]
        self._session.leave(order)

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
                book = self._book(order.symbol)
                self._close(book, order, OrderStatus.CANCELED, action.reason, now_ns, events)
