"""What the market clock does to the fill engine's book: auctions, day and gtd expiry.

The session's open arms the opening auction (each symbol's next trade is its
opening print); its close runs the closing auction at each symbol's last trade,
expires the opg orders that never saw a print, then the day orders (extended-hours
ones at the post-market end); a gtd order expires at its date. Auction fills are
explained by the trade they crossed at (see `auction.py` for the model). No I/O.
"""

from __future__ import annotations

from cift.trading.auction import crosses
from cift.trading.fill_events import EngineEvent, PriceSource, Trade
from cift.trading.fill_matching import MatchingCore
from cift.trading.orders import OrderStatus
from cift.trading.vocabulary import ZERO, TimeInForce


class ClockCore(MatchingCore):
    """The matching core plus the clock's events; `fills.FillEngine` adds the rest of the API."""

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
        for order_id in session.expiring_day_orders(post_market=post_market):
            order = self._orders.get(order_id)
            if order is None:
                continue  # canceled along with an expiring parent
            reason = "day order expired at the session close"
            self._close(
                self._book(order.symbol), order, OrderStatus.EXPIRED, reason, now_ns, events
            )
        return events

    def expire_due(self, now_ns: int) -> list[EngineEvent]:
        """Expire gtd orders whose date has come."""
        events: list[EngineEvent] = []
        for order_id in self._session.due(now_ns):
            order = self._orders.get(order_id)
            if order is None:
                continue  # filled or canceled before its date
            reason = "good-till-date order expired at its expire_at"
            self._close(
                self._book(order.symbol), order, OrderStatus.EXPIRED, reason, now_ns, events
            )
        return events

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
