"""Pre-market, regular session, post-market, closed: which orders a tick may fill.

Outside the regular session only extended-hours limit day orders trade (Alpaca's
rule); every other order rests and trades from the first tick of the open.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from cift.trading.auction import (
    MINUTE_NS,
    POST_SESSION_NS,
    PRE_SESSION_NS,
    SessionClock,
    SessionPhase,
    next_change_ns,
    session_phase,
)
from cift.trading.fills import (
    EngineEvent,
    Fill,
    FillEngine,
    FillModel,
    OrderClosed,
    OrderTriggered,
    Quote,
    StopTrigger,
    Trade,
)
from cift.trading.orders import Order, OrderRequest, OrderStatus, new_order
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
KO = Instrument("KO", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
_ids = itertools.count(1)
OPEN_NS = 10_000 * MINUTE_NS
CLOSE_NS = OPEN_NS + 390 * MINUTE_NS


def engine(phase: SessionPhase, model: FillModel | None = None) -> FillEngine:
    built = FillEngine(model)
    built.set_instrument(KO)
    built.set_phase(phase)
    return built


def order(
    side: Side,
    order_type: OrderType = OrderType.LIMIT,
    *,
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    extended: bool = False,
    qty: int = 10,
    order_id: str = "",
    **fields: object,
) -> Order:
    request = OrderRequest(
        symbol="KO",
        side=side,
        order_type=order_type,
        time_in_force=tif,
        qty=D(qty),
        limit_price=None if limit is None else D(limit),
        extended_hours=extended,
        **fields,  # type: ignore[arg-type]
    )
    built = new_order(request, KO, order_id=order_id or f"p{next(_ids)}", account_id="a", now_ns=1)
    built.transition(OrderStatus.ACCEPTED, 1)
    return built


QUOTE_NS = 7


def quote(eng: FillEngine, bid: str, ask: str, size: int = 100) -> list[EngineEvent]:
    return eng.on_quote(Quote("KO", D(bid), D(ask), D(size), D(size), QUOTE_NS))


def fills(events: list[EngineEvent]) -> list[tuple[str, Decimal, Decimal]]:
    return [(e.order_id, e.qty, e.price) for e in events if isinstance(e, Fill)]


def test_the_engine_starts_in_the_regular_session() -> None:
    eng = FillEngine()
    assert eng.phase is SessionPhase.REGULAR
    eng.set_instrument(KO)
    buy = order(Side.BUY, limit="50")
    eng.add(buy, 1)
    assert fills(quote(eng, "49", "50")) == [(buy.order_id, D(10), D(50))]


def test_pre_market_fills_an_extended_limit_and_the_regular_one_fills_at_the_open() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    quote(eng, "49.9", "50")
    regular = order(Side.BUY, limit="50.5")
    extended = order(Side.BUY, limit="50.2", extended=True)
    assert eng.add(regular, 1) == []  # marketable, but not before the open
    assert fills(eng.add(extended, 1)) == [(extended.order_id, D(10), D(50))]
    assert fills(quote(eng, "49.9", "50")) == []
    assert regular.status is OrderStatus.ACCEPTED and regular.order_id in eng
    eng.set_phase(SessionPhase.REGULAR)
    assert fills(quote(eng, "49.9", "50")) == [(regular.order_id, D(10), D(50))]


def test_an_extended_limit_resting_pre_market_fills_on_the_quote_that_reaches_it() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    extended = order(Side.SELL, limit="51", extended=True)
    assert eng.add(extended, 1) == []
    assert fills(quote(eng, "50.9", "51.1")) == []
    assert fills(quote(eng, "51.2", "51.3")) == [(extended.order_id, D(10), D("51.2"))]
    assert extended.order_id not in eng


def test_market_orders_wait_for_the_open_and_fill_at_its_first_quote() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    quote(eng, "49.9", "50")
    buy = order(Side.BUY, OrderType.MARKET)
    sell = order(Side.SELL, OrderType.MARKET)
    assert eng.add(buy, 1) == [] and eng.add(sell, 1) == []
    assert fills(quote(eng, "49.9", "50")) == []
    eng.set_phase(SessionPhase.REGULAR)
    assert fills(quote(eng, "49.8", "49.9")) == [
        (buy.order_id, D(10), D("49.9")),
        (sell.order_id, D(10), D("49.8")),
    ]


def test_post_market_fills_extended_limits_only_and_closed_fills_nothing() -> None:
    eng = engine(SessionPhase.REGULAR)
    regular = order(Side.SELL, limit="60")
    gtc = order(Side.SELL, limit="60", tif=TimeInForce.GTC)
    extended = order(Side.SELL, limit="60", extended=True, qty=5)
    for each in (regular, gtc, extended):
        assert eng.add(each, 1) == []
    eng.set_phase(SessionPhase.POST_MARKET)
    assert fills(quote(eng, "61", "61.1")) == [(extended.order_id, D(5), D(61))]
    eng.set_phase(SessionPhase.CLOSED)
    late = order(Side.SELL, limit="60", extended=True)
    assert eng.add(late, 1) == []
    assert quote(eng, "62", "62.1") == []
    assert {regular.order_id, gtc.order_id, late.order_id} <= {
        o.order_id for o in eng.open_orders()
    }


def test_extended_limits_match_best_price_first_past_regular_orders_ahead_of_them() -> None:
    eng = engine(SessionPhase.REGULAR)
    ahead = order(Side.BUY, limit="55")  # best bid, but not for the pre-market
    eng.add(ahead, 1)
    eng.set_phase(SessionPhase.PRE_MARKET)
    low = order(Side.BUY, limit="50.1", extended=True)
    high = order(Side.BUY, limit="50.3", extended=True)
    eng.add(low, 1)
    eng.add(high, 1)
    events = quote(eng, "49", "50.2")
    assert fills(events) == [(high.order_id, D(10), D("50.2"))]
    assert fills(quote(eng, "49", "50.1")) == [(low.order_id, D(10), D("50.1"))]
    assert ahead.status is OrderStatus.ACCEPTED


def test_an_extended_limit_the_displayed_size_cannot_fill_keeps_its_place() -> None:
    eng = engine(SessionPhase.POST_MARKET, FillModel(fill_at_displayed_size=True))
    first = order(Side.BUY, limit="50", extended=True)
    second = order(Side.BUY, limit="50", extended=True)
    eng.add(first, 1)
    eng.add(second, 1)
    assert fills(quote(eng, "49", "50", size=4)) == [(first.order_id, D(4), D(50))]
    assert fills(quote(eng, "49", "50", size=8)) == [
        (first.order_id, D(6), D(50)),
        (second.order_id, D(2), D(50)),
    ]
    assert first.status is OrderStatus.FILLED and second.filled_qty == D(2)


def test_an_extended_limit_filled_in_the_regular_session_is_gone_from_the_post_market() -> None:
    eng = engine(SessionPhase.REGULAR)
    extended = order(Side.BUY, limit="50", extended=True)
    eng.add(extended, 1)
    assert fills(quote(eng, "49", "50")) == [(extended.order_id, D(10), D(50))]
    eng.set_phase(SessionPhase.POST_MARKET)
    assert quote(eng, "49", "50") == []


def test_a_canceled_extended_limit_does_not_trade_in_the_post_market() -> None:
    eng = engine(SessionPhase.POST_MARKET)
    extended = order(Side.BUY, limit="50", extended=True)
    eng.add(extended, 1)
    assert eng.remove(extended.order_id) is extended
    assert quote(eng, "49", "49.5") == []


def test_stops_do_not_trigger_outside_the_regular_session() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    eng.on_trade(Trade("KO", D(50), D(1), 2))
    stop = order(Side.SELL, OrderType.STOP, stop_price=D(49))
    eng.add(stop, 1)
    assert eng.on_trade(Trade("KO", D(48), D(1), 3)) == []
    assert not stop.triggered
    eng.set_phase(SessionPhase.REGULAR)
    quote(eng, "47.9", "48")
    events = eng.on_trade(Trade("KO", D(48), D(1), 4))
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [stop.order_id]
    assert fills(events) == [(stop.order_id, D(10), D("47.9"))]


def test_quote_triggered_stops_wait_for_the_open_too() -> None:
    eng = engine(SessionPhase.POST_MARKET, FillModel(stop_trigger=StopTrigger.QUOTE))
    stop = order(Side.BUY, OrderType.STOP, stop_price=D(51))
    eng.add(stop, 1)
    assert quote(eng, "51.5", "52") == [] and not stop.triggered
    eng.set_phase(SessionPhase.REGULAR)
    assert fills(quote(eng, "51.5", "52")) == [(stop.order_id, D(10), D(52))]


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_immediate_orders_outside_the_session_are_canceled_saying_when_to_send_them(
    tif: TimeInForce,
) -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    quote(eng, "49.9", "50")
    immediate = order(Side.BUY, limit="51", tif=tif)
    events = eng.add(immediate, 1)
    assert [(e.order_id, e.status) for e in events if isinstance(e, OrderClosed)] == [
        (immediate.order_id, OrderStatus.CANCELED)
    ]
    assert not fills(events) and immediate.order_id not in eng
    assert "regular session is closed" in immediate.reason
    assert "submit it after the open" in immediate.reason


def test_triggered_stops_reloaded_outside_the_session_wait_as_what_they_became() -> None:
    eng = engine(SessionPhase.CLOSED)
    stop = order(Side.BUY, OrderType.STOP, stop_price=D(49))
    stop.trigger(None)
    stop_limit = order(Side.SELL, OrderType.STOP_LIMIT, stop_price=D(51), limit="50.5")
    stop_limit.trigger(None)
    eng.add(stop, 1)
    eng.add(stop_limit, 1)
    assert quote(eng, "50.6", "50.7") == []
    eng.set_phase(SessionPhase.REGULAR)
    assert fills(quote(eng, "50.6", "50.7")) == [
        (stop.order_id, D(10), D("50.7")),
        (stop_limit.order_id, D(10), D("50.6")),
    ]


def test_a_trailing_stop_placed_outside_the_session_anchors_and_waits() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    eng.on_trade(Trade("KO", D(50), D(1), 2))
    trail = order(Side.SELL, OrderType.TRAILING_STOP, trail_price=D(1))
    eng.add(trail, 1)
    assert eng.water_mark(trail.order_id) == D(50)
    assert eng.on_trade(Trade("KO", D(45), D(1), 3)) == []
    eng.set_phase(SessionPhase.REGULAR)
    quote(eng, "44.9", "45")
    events = eng.on_trade(Trade("KO", D(45), D(1), 4))
    assert fills(events) == [(trail.order_id, D(10), D("44.9"))]


def test_an_opg_order_placed_pre_market_still_waits_for_the_opening_print() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    opg = order(Side.BUY, OrderType.MARKET, tif=TimeInForce.OPG)
    assert eng.add(opg, 1) == []
    quote(eng, "49.9", "50")
    assert eng.on_trade(Trade("KO", D(50), D(1), 2)) == []
    eng.set_phase(SessionPhase.REGULAR)
    eng.open_session()
    assert fills(eng.on_trade(Trade("KO", D("50.05"), D(1), 3))) == [
        (opg.order_id, D(10), D("50.05"))
    ]


def test_fills_and_cancels_outside_the_session_carry_the_time_they_happened() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    quote(eng, "49.9", "50")
    at_entry = order(Side.BUY, limit="50", extended=True)
    (fill,) = eng.add(at_entry, 41)
    assert isinstance(fill, Fill) and fill.ts_ns == 41
    resting = order(Side.BUY, limit="49", extended=True)
    eng.add(resting, 42)
    (fill,) = quote(eng, "48", "49")
    assert isinstance(fill, Fill) and fill.ts_ns == QUOTE_NS
    (closing,) = eng.add(order(Side.BUY, limit="49", tif=TimeInForce.IOC), 43)
    assert isinstance(closing, OrderClosed) and closing.ts_ns == 43


def test_a_sell_limit_at_exactly_the_bid_trades_with_no_offer_quoted() -> None:
    eng = engine(SessionPhase.POST_MARKET)
    extended = order(Side.SELL, limit="51", extended=True)
    eng.add(extended, 1)
    assert fills(quote(eng, "51", "0")) == [(extended.order_id, D(10), D(51))]


def test_a_buy_limit_away_from_the_offer_does_not_keep_sells_from_the_bid() -> None:
    eng = engine(SessionPhase.POST_MARKET)
    away = order(Side.BUY, limit="40", extended=True)
    seller = order(Side.SELL, limit="50", extended=True)
    eng.add(away, 1)
    eng.add(seller, 1)
    assert fills(quote(eng, "50", "50.1")) == [(seller.order_id, D(10), D(50))]


def test_a_buy_the_offers_size_cannot_fill_does_not_keep_sells_from_the_bid() -> None:
    eng = engine(SessionPhase.POST_MARKET, FillModel(fill_at_displayed_size=True))
    buyer = order(Side.BUY, limit="51", extended=True)
    seller = order(Side.SELL, limit="50", extended=True)
    eng.add(buyer, 1)
    eng.add(seller, 1)
    assert fills(quote(eng, "50", "50.1", size=4)) == [
        (buyer.order_id, D(4), D("50.1")),
        (seller.order_id, D(4), D(50)),
    ]


def test_extended_sells_match_lowest_limit_first() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    high = order(Side.SELL, limit="52", extended=True)
    low = order(Side.SELL, limit="51", extended=True)
    eng.add(high, 1)
    eng.add(low, 1)
    assert fills(quote(eng, "51.5", "53")) == [(low.order_id, D(10), D("51.5"))]


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_extended_limits_at_one_price_fill_in_arrival_order(side: Side) -> None:
    eng = engine(SessionPhase.PRE_MARKET, FillModel(fill_at_displayed_size=True))
    # Ids sort against arrival, so only time priority puts the first one first.
    first = order(side, limit="50", extended=True, order_id="z-first")
    second = order(side, limit="50", extended=True, order_id="a-second")
    eng.add(first, 1)
    eng.add(second, 1)
    assert fills(quote(eng, "50", "50", size=10)) == [(first.order_id, D(10), D(50))]


def test_waiting_market_orders_keep_their_side_at_the_open() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    buy = order(Side.BUY, OrderType.MARKET)
    sell = order(Side.SELL, OrderType.MARKET)
    eng.add(buy, 1)
    eng.add(sell, 1)
    eng.set_phase(SessionPhase.REGULAR)
    # Only a bid: the sell fills; the buy waits for an offer without blocking it.
    assert fills(quote(eng, "49.8", "0")) == [(sell.order_id, D(10), D("49.8"))]
    assert buy.order_id in eng


def test_an_untriggered_stop_limit_placed_outside_the_session_waits_for_its_stop() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    stop_limit = order(Side.BUY, OrderType.STOP_LIMIT, stop_price=D(52), limit="52.5")
    eng.add(stop_limit, 1)
    eng.set_phase(SessionPhase.REGULAR)
    assert quote(eng, "49.9", "50") == []  # marketable to its limit, but not triggered
    assert not stop_limit.triggered


def test_stops_placed_outside_the_session_trigger_in_arrival_order() -> None:
    eng = engine(SessionPhase.PRE_MARKET)
    eng.on_trade(Trade("KO", D(50), D(1), 2))
    first = order(Side.SELL, OrderType.STOP, stop_price=D(49), order_id="z-first")
    second = order(Side.SELL, OrderType.STOP, stop_price=D(49), order_id="a-second")
    eng.add(first, 1)
    eng.add(second, 1)
    eng.set_phase(SessionPhase.REGULAR)
    quote(eng, "47.9", "48")
    events = eng.on_trade(Trade("KO", D(48), D(1), 4))
    assert [e.order_id for e in events if isinstance(e, Fill)] == [first.order_id, second.order_id]


def test_a_buy_trailing_stop_placed_outside_the_session_anchors_at_the_last_trade() -> None:
    eng = engine(SessionPhase.POST_MARKET)
    eng.on_trade(Trade("KO", D(50), D(1), 2))
    trail = order(Side.BUY, OrderType.TRAILING_STOP, trail_price=D(1))
    eng.add(trail, 1)
    assert eng.water_mark(trail.order_id) == D(50)


def test_a_simple_order_entering_through_add_group_is_stamped_with_its_time() -> None:
    eng = engine(SessionPhase.REGULAR)
    quote(eng, "49.9", "50")
    simple = order(Side.BUY, limit="50")
    (fill,) = eng.add_group(simple, [], 55)
    assert isinstance(fill, Fill) and fill.ts_ns == 55


# ---- the phase the market clock reads ------------------------------------------------


def at(now_ns: int, is_open: bool) -> SessionClock:
    return SessionClock(now_ns, is_open, None if is_open else OPEN_NS, CLOSE_NS)


def test_an_open_clock_is_the_regular_session() -> None:
    assert session_phase(at(OPEN_NS, True), None) is SessionPhase.REGULAR
    assert session_phase(at(OPEN_NS, True), OPEN_NS + 1) is SessionPhase.REGULAR
    always_open = SessionClock(5, True, None, None)
    assert session_phase(always_open, None) is SessionPhase.REGULAR


def test_the_pre_market_is_the_five_and_a_half_hours_before_the_open() -> None:
    assert PRE_SESSION_NS == 330 * MINUTE_NS  # 04:00-09:30 New York
    start = OPEN_NS - PRE_SESSION_NS
    assert session_phase(at(start, False), None) is SessionPhase.PRE_MARKET
    assert session_phase(at(OPEN_NS - 1, False), None) is SessionPhase.PRE_MARKET
    assert session_phase(at(start - 1, False), None) is SessionPhase.CLOSED
    assert session_phase(SessionClock(start, False, None, None), None) is SessionPhase.CLOSED


def test_the_post_market_runs_until_its_end_after_a_close_seen() -> None:
    end = CLOSE_NS + POST_SESSION_NS
    after_close = SessionClock(CLOSE_NS, False, OPEN_NS + 1440 * MINUTE_NS, None)
    assert session_phase(after_close, end) is SessionPhase.POST_MARKET
    last = SessionClock(end - 1, False, OPEN_NS + 1440 * MINUTE_NS, None)
    assert session_phase(last, end) is SessionPhase.POST_MARKET
    over = SessionClock(end, False, OPEN_NS + 1440 * MINUTE_NS, None)
    assert session_phase(over, end) is SessionPhase.CLOSED
    assert session_phase(after_close, None) is SessionPhase.CLOSED


def test_only_the_pre_and_post_market_are_extended() -> None:
    assert [p for p in SessionPhase if p.extended] == [
        SessionPhase.PRE_MARKET,
        SessionPhase.POST_MARKET,
    ]


def test_the_watcher_wakes_at_the_next_change_of_phase() -> None:
    closed = SessionClock(OPEN_NS - PRE_SESSION_NS - 5, False, OPEN_NS, CLOSE_NS)
    assert next_change_ns(closed, None) == OPEN_NS - PRE_SESSION_NS
    pre = SessionClock(OPEN_NS - 5, False, OPEN_NS, CLOSE_NS)
    assert next_change_ns(pre, None) == OPEN_NS
    tomorrow = OPEN_NS + 1440 * MINUTE_NS
    regular = SessionClock(OPEN_NS + 5, True, tomorrow, CLOSE_NS)
    assert next_change_ns(regular, None) == CLOSE_NS
    post_end = CLOSE_NS + POST_SESSION_NS
    post = SessionClock(CLOSE_NS + 5, False, tomorrow, tomorrow + 390 * MINUTE_NS)
    assert next_change_ns(post, post_end) == post_end
    # A change at this very instant has happened: the next one is ahead.
    pre_start = SessionClock(OPEN_NS - PRE_SESSION_NS, False, OPEN_NS, CLOSE_NS)
    assert next_change_ns(pre_start, None) == OPEN_NS
    assert next_change_ns(SessionClock(5, True, None, None), None) is None
