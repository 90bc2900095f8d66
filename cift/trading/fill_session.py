"""Which open orders the session's clock acts on: day, extended-hours day, gtd, auctions.

The engine tells this index when an order opens and leaves; the clock's events
(close, post-market end, a gtd date, an auction) ask it which orders are due.
Extended-hours limits are also kept in price ladders of their own, so a pre- or
post-market tick reaches them without wading through the regular orders that
rest ahead of them and must not trade then.
Ids only: closing or crossing the orders is the engine's job.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from cift.trading.auction import SessionPhase
from cift.trading.book import Locations, PriceLadder
from cift.trading.orders import AUCTION_TIFS, Order
from cift.trading.vocabulary import Side, TimeInForce


class SessionOrders:
    """Open orders by the clock event that ends them."""

    __slots__ = (
        "_auctions",
        "_day",
        "_expiries",
        "_extended_day",
        "_extended_ladders",
        "_extended_locations",
        "_extended_seq",
        "opening",
        "phase",
    )

    def __init__(self) -> None:
        self._day: set[str] = set()
        self._extended_day: set[str] = set()
        self._expiries: list[tuple[int, str]] = []  # (expire_ns, order id) of gtd orders
        # opg / cls orders by symbol, waiting for their auction (insertion ordered).
        self._auctions: dict[TimeInForce, dict[str, dict[str, None]]] = {
            tif: {} for tif in AUCTION_TIFS
        }
        self.opening = False  # the session opened: each symbol's next trade is its opening print
        # Which orders ticks may fill now; regular unless a clock with sessions says not.
        self.phase = SessionPhase.REGULAR
        # Extended-hours limits by symbol: (buy ladder, sell ladder), best first.
        self._extended_locations: Locations = {}
        self._extended_ladders: dict[str, tuple[PriceLadder, PriceLadder]] = {}
        self._extended_seq = 0

    def enter(self, order: Order) -> None:
        if order.time_in_force is TimeInForce.DAY:
            if order.extended_hours:
                self._extended_day.add(order.order_id)
                self._index_extended(order)
            else:
                self._day.add(order.order_id)
        elif order.expire_ns is not None:
            heapq.heappush(self._expiries, (order.expire_ns, order.order_id))

    def _index_extended(self, order: Order) -> None:
        assert order.limit_price is not None  # extended hours are for limit orders only
        ladders = self._extended_ladders.get(order.symbol)
        if ladders is None:
            locations = self._extended_locations
            ladders = self._extended_ladders[order.symbol] = (
                PriceLadder(locations, highest_first=True),
                PriceLadder(locations, highest_first=False),
            )
        self._extended_seq += 1
        ladder = ladders[0] if order.side is Side.BUY else ladders[1]
        ladder.add(order.limit_price, self._extended_seq, order.order_id)

    def extended_ladder(self, symbol: str, side: Side) -> PriceLadder | None:
        """The extended-hours limits of `symbol` on `side`, best first (None: there are none)."""
        ladders = self._extended_ladders.get(symbol)
        if ladders is None:
            return None
        return ladders[0] if side is Side.BUY else ladders[1]

    def wait_for_auction(self, order: Order) -> None:
        auction = self._auctions[order.time_in_force]
        auction.setdefault(order.symbol, {})[order.order_id] = None

    def leave(self, order: Order) -> None:
        """`order` left the book (filled, closed, removed): no clock event concerns it now.

        gtd entries stay in the heap and are skipped when they come due.
        """
        self._day.discard(order.order_id)
        if order.order_id in self._extended_day:
            self._extended_day.discard(order.order_id)
            ladder = self._extended_locations.get(order.order_id)
            if isinstance(ladder, PriceLadder):
                ladder.discard(order.order_id)
        auction = self._auctions.get(order.time_in_force)
        if auction is not None:
            waiting = auction.get(order.symbol)
            if waiting is not None:
                waiting.pop(order.order_id, None)
                if not waiting:
                    del auction[order.symbol]

    def expiring_day_orders(self, *, post_market: bool) -> list[str]:
        """Day orders ending now, in id order: extended-hours ones only at the post-market end."""
        return sorted(self._extended_day if post_market else self._day)

    def due(self, now_ns: int) -> Iterator[str]:
        """Pop the gtd orders whose date has come (some may have left the book since)."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now_ns:
            yield heapq.heappop(expiries)[1]

    def waits_for_opening(self, symbol: str) -> bool:
        """Whether `symbol`'s next trade crosses waiting opg orders (callers on the tick
        path test `opening` first, which is false all session long)."""
        return self.opening and symbol in self._auctions[TimeInForce.OPG]

    def symbols_waiting(self, tif: TimeInForce) -> list[str]:
        return list(self._auctions[tif])

    def take_auction(self, tif: TimeInForce, symbol: str) -> list[str]:
        """The `tif` orders of `symbol` waiting for their auction, in arrival order."""
        return list(self._auctions[tif].pop(symbol, None) or ())
