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

from cift.trading.fills import EngineEvent, FillEngine
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

_AT_ONCE = (TimeInForce.IOC, TimeInForce.FOK)


def fill_market_now(engine: FillEngine, order: Order, now_ns: int) -> list[EngineEvent]:
    """Fill an accepted IOC/FOK market order for its whole quantity at the quote, or `add` it."""
    if not fills_whole_at_once(engine, order):
        return engine.add(order, now_ns)
    events: list[EngineEvent] = []
    engine._fill_now(engine._book(order.symbol), order, now_ns, events)
    return events


def fills_whole_at_once(engine: FillEngine, order: Order) -> bool:
    """Whether `engine.add(order)` would fill all of it on entry and leave nothing behind."""
    if (
        order.order_type is not OrderType.MARKET
        or order.time_in_force not in _AT_ONCE
        or order.status is not OrderStatus.ACCEPTED
        or order.qty is None
        or order.notional is not None
        or engine._displayed
        or order.symbol not in engine._instruments
        or order.order_id in engine
        or order.order_id in engine.contingent
    ):
        return False
    bid, ask, _ = engine.last_prices(order.symbol)
    return (ask if order.side is Side.BUY else bid) is not None
