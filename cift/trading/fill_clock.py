"""What the market clock does to the fill engine's book: sessions, auctions, expiries.

The session's phase (`set_phase`) says which orders ticks may fill: in the regular
session all of them; in the pre- and post-market only extended-hours limits, which
are matched from their own ladders; while closed none. Orders that may not trade
now rest where the first regular tick reaches them, so they fill at the open.

The session's open arms the opening auction (each symbol's next trade is its
opening print); its close runs the closing auction at each symbol's last trade,
expires the opg orders that never saw a print, then the day orders (extended-hours
ones at the post-market end); a gtd order expires at its date. Auction fills are
explained by the trade they crossed at (see `auction.py` for the model). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from cift.trading.auction import SessionPhase, crosses
from cift.trading.book import SymbolBook
from cift.trading.fill_events import EngineEvent, PriceSource, Trade
from cift.trading.fill_matching import MatchingCore
from cift.trading.fill_triggers import wait_for_trigger
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import ZERO, OrderType, Side, TimeInForce


class ClockCore(MatchingCore):
    """The matching core plus the clock's events; `fills.FillEngine` adds the rest of the API."""

    @property
    def phase(self) -> SessionPhase:
        return self._session.phase

    def set_phase(self, phase: SessionPhase) -> None:
        """The market clock's session phase, from now until the next call.

        The engine starts in the regular session (an always-open clock, the
        backtest); an owner whose clock has sessions sets it as the clock moves.
        """
        self._session.phase = phase

    def open_session(self) -> None:
        """The session opened: each symbol's next trade prints its opening auction."""
        self._session.opening = True

    def close_session(self, now_ns: int, *, post_market: bool = False) -> list[EngineEvent]:
        """The regular session closed: run the closing auction, expire day orders.

        Extended-hours day orders stay until `post_market` (the post-market
        session's end), when they expire too.
        """
        events: list[EngineEvent] = []
        session = self._session
        if not post_market:
            session.opening = False
            for symbol in session.symbols_waiting(TimeInForce.CLS):
                self._run_auction(TimeInForce.CLS, symbol, now_ns, events)
            # opg orders still here missed their opening print (no trade all session).
            for symbol in session.symbols_waiting(TimeInForce.OPG):
                self._run_auction(TimeInForce.OPG, symbol, now_ns, events)
        expiring = session.expiring_day_orders(post_market=post_market)
        self._expire(expiring, "day order expired at the session close", now_ns, events)
        return events

    def expire_missed_close(
        self, placed_before_ns: int, now_ns: int, *, post_market_ended: bool
    ) -> list[EngineEvent]:
        """Expire the session orders of a close the engine's owner did not see (it was down).

        Day, opg and cls orders placed before that close (`placed_before_ns`, in the
        orders' own time) were for its session; extended-hours day orders only once
        its post-market has ended too. Orders placed after it are for the next
        session and stay.
        """
        stale = sorted(
            order.order_id
            for order in self._orders.values()
            if order.created_ns < placed_before_ns
            and _ends_with_its_session(order, post_market_ended=post_market_ended)
        )
        events: list[EngineEvent] = []
        reason = "expired at a session close that passed while execution was down"
        self._expire(stale, reason, now_ns, events)
        return events

    def expire_due(self, now_ns: int) -> list[EngineEvent]:
        """Expire gtd orders whose date has come."""
        events: list[EngineEvent] = []
        due = self._session.due(now_ns)
        self._expire(due, "good-till-date order expired at its expire_at", now_ns, events)
        return events

    def _expire(
        self, order_ids: Iterable[str], reason: str, now_ns: int, events: list[EngineEvent]
    ) -> None:
        """Close each of `order_ids` still in the book as expired, for `reason`.

        An id may have left the book since it was listed: filled, canceled, or
        canceled along with an expiring parent earlier in the same list.
        """
        for order_id in order_ids:
            order = self._orders.get(order_id)
            if order is not None:
                self._close(
                    self._book(order.symbol), order, OrderStatus.EXPIRED, reason, now_ns, events
                )

    def _place(self, order: Order, now_ns: int, events: list[EngineEvent]) -> None:
        """Put `order` to work, or outside the regular session let it wait for the open."""
        phase = self._session.phase
        if phase is SessionPhase.REGULAR:
            super()._place(order, now_ns, events)
            return
        book = self._book(order.symbol)
        if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            reason = (
                f"{order.time_in_force.value} order canceled: the regular session is closed "
                "and only extended-hours limit orders trade now; submit it after the open"
            )
            self._close(book, order, OrderStatus.CANCELED, reason, now_ns, events)
            return
        kind = order.order_type
        if kind is OrderType.MARKET or (order.triggered and kind is not OrderType.STOP_LIMIT):
            book.enqueue_market(order.side, order.order_id)
        elif kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and order.triggered):
            assert order.limit_price is not None
            ladder = book.buy_limits if order.side is Side.BUY else book.sell_limits
            ladder.add(order.limit_price, self._next_seq(), order.order_id)
            if phase.extended and order.extended_hours:
                self._match_extended(book, now_ns, events)
        else:
            sell_ref, buy_ref = self._refs(book)
            wait_for_trigger(book, order, self._next_seq(), sell_ref, buy_ref)

    def _match_extended(self, book: SymbolBook, now_ns: int, events: list[EngineEvent]) -> None:
        """Fill the extended-hours limits the quote reaches; no other order trades now."""
        session = self._session
        for side, price in ((Side.BUY, book.ask), (Side.SELL, book.bid)):
            ladder = session.extended_ladder(book.symbol, side)
            if ladder is None or price is None:
                continue
            while (best := ladder.best()) is not None:
                limit, order_id = best
                if (limit < price) if side is Side.BUY else (limit > price):
                    break
                order = self._orders[order_id]
                self._fill_now(book, order, now_ns, events)
                if order.is_open:
                    break
                self._finish(book, order)

    def _run_auction(
        self,
        tif: TimeInForce,
        symbol: str,
        now_ns: int,
        events: list[EngineEvent],
        *,
        opening_print: Trade | None = None,
    ) -> None:
        """Cross the waiting `tif` orders of `symbol` at one price; the rest expire.

        The opening auction's price is `opening_print` (none: the session closed
        without a trade), the closing auction's the symbol's last trade.
        """
        name = "opening" if tif is TimeInForce.OPG else "closing"
        source = (
            PriceSource.OPENING_AUCTION if tif is TimeInForce.OPG else PriceSource.CLOSING_AUCTION
        )
        trade = opening_print if tif is TimeInForce.OPG else self._trades.get(symbol)
        book = self._book(symbol)
        at = trade.price if trade is not None else None
        for order_id in self._session.take_auction(tif, symbol):
            order = self._orders[order_id]
            if at is not None and crosses(order, at):
                explanation = self._pricer.explain(
                    source,
                    at,
                    quote=self._quotes.get(symbol),
                    trade=trade,
                    limit=order.limit_price,
                    available=None,
                )
                qty = order.remaining_qty or ZERO
                self._record(
                    book, order, qty, at, now_ns, events, explanation, takes_quote_size=False
                )
                self._finish(book, order)
                continue
            reason = (
                f"did not cross in the {name} auction"
                if at is None
                else f"did not cross in the {name} auction at {at}"
            )
            self._close(book, order, OrderStatus.EXPIRED, reason, now_ns, events)


def _ends_with_its_session(order: Order, *, post_market_ended: bool) -> bool:
    """Whether a close ends `order`: opg and cls always, day orders (extended ones after its post-market)."""
    if order.time_in_force in (TimeInForce.OPG, TimeInForce.CLS):
        return True
    return order.time_in_force is TimeInForce.DAY and (
        post_market_ended or not order.extended_hours
    )
