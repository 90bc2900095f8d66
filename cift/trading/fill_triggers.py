"""Stops and trailing stops of one symbol's book: where they wait and which a price arms.

A sell stop arms when the sell-side reference (last trade, or the bid when quotes
trigger) falls to its stop; a buy stop when the buy-side reference rises to it.
Trailing stops wait in ladders that move their water mark with the price (see
`book.TrailingLadder`) and arm at the mark minus (plus, for buys) the trail. This
module only indexes and pops order ids; what an armed order does is the engine's.
"""

from __future__ import annotations

from decimal import Decimal

from cift.trading.book import SymbolBook
from cift.trading.orders import HUNDRED, Order
from cift.trading.vocabulary import OrderType, Side


def wait_for_trigger(
    book: SymbolBook,
    order: Order,
    seq: int,
    sell_ref: Decimal | None,
    buy_ref: Decimal | None,
) -> None:
    """Index an untriggered stop, stop-limit or trailing stop where prices can arm it.

    A trailing stop without a saved water mark anchors at the current reference
    price of its side.
    """
    buy = order.side is Side.BUY
    oid = order.order_id
    if order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        assert order.stop_price is not None
        (book.buy_stops if buy else book.sell_stops).add(order.stop_price, seq, oid)
        return
    anchor = order.water_mark if order.water_mark is not None else (buy_ref if buy else sell_ref)
    if order.trail_price is not None:
        ladder = book.buy_trail_price if buy else book.sell_trail_price
        ladder.add(order.trail_price, seq, oid, anchor)
    else:
        assert order.trail_percent is not None
        ladder = book.buy_trail_percent if buy else book.sell_trail_percent
        ladder.add(order.trail_percent / HUNDRED, seq, oid, anchor)


def armed(
    book: SymbolBook, sell_ref: Decimal | None, buy_ref: Decimal | None
) -> list[tuple[str, Decimal | None]]:
    """Pop the stops these reference prices arm: (order id, water mark for trailing ones)."""
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
    return triggered
