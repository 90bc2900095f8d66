"""A market order that fills at once, without the book's bookkeeping around it.

`FillEngine.add` of an immediate-or-cancel (or fill-or-kill) market order indexes
the order as open (by id, account, expiry), fills it against the quote, and, since
nothing of it is left, takes it out of those indexes again. When the fill is sure
to take the whole order, that indexing has no effect anyone can see: the events,
the order's state and the engine's state afterwards are the same without it.

`fill_market_now` takes that path: it hands the order straight to the engine's own
fill decision (`_fill_now`: the quote's side, the slippage, the tick rounding, the
commission model), so there is one fill model, not two. Whenever the whole fill is
not certain (displayed-size fills, no quote on the order's side, a contingent leg,
any other kind of order), it is `FillEngine.add`, unchanged. A backtest replaying a
reversal per signal turn sends tens of thousands of such orders; nothing else does
anything differently.
"""

from __future__ import annotations

from cift.trading.book import SymbolBook
from cift.trading.fills import EngineEvent, FillEngine
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

_AT_ONCE = (TimeInForce.IOC, TimeInForce.FOK)
# Enum members read once: an enum class attribute costs far more than a global.
_MARKET, _ACCEPTED, _BUY = OrderType.MARKET, OrderStatus.ACCEPTED, Side.BUY


def fill_market_now(engine: FillEngine, order: Order, now_ns: int) -> list[EngineEvent]:
    """Fill an accepted IOC/FOK market order for its whole quantity at the quote, or `add` it."""
    book = _book_if_whole(engine, order)
    if book is None:
        return engine.add(order, now_ns)
    events: list[EngineEvent] = []
    engine._fill_now(book, order, now_ns, events)
    return events


def fills_whole_at_once(engine: FillEngine, order: Order) -> bool:
    """Whether `engine.add(order)` would fill all of it on entry and leave nothing behind."""
    return _book_if_whole(engine, order) is not None


def _book_if_whole(engine: FillEngine, order: Order) -> SymbolBook | None:
    """The order's book if `fills_whole_at_once`, else None.

    The engine's own tables are read directly (`in engine` and `last_prices` ask
    them the same), since this runs once per order a backtest sends.
    """
    order_id = order.order_id
    if (
        order.order_type is not _MARKET
        or order.time_in_force not in _AT_ONCE
        or order.status is not _ACCEPTED
        or order.qty is None
        or order.notional is not None
        or engine._displayed
        or order.symbol not in engine._instruments
        or order_id in engine._orders
        or order_id in engine._held
        or order_id in engine.contingent.member_ids
    ):
        return None
    book = engine._books.get(order.symbol)
    if book is None or (book.ask if order.side is _BUY else book.bid) is None:
        return None
    return book
