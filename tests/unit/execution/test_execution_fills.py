"""The fill model against scripted quote and trade sequences."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cift.trading.fills import (
    CommissionModel,
    EngineEvent,
    Fill,
    FillEngine,
    FillExplanation,
    FillModel,
    OpenOrders,
    OrderClosed,
    OrderTriggered,
    PriceSource,
    Quote,
    StopTrigger,
    Trade,
)
from cift.trading.orders import Order, OrderRequest, OrderStatus, new_order
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
FRAC = Instrument("FRAC", tick_size=D("0.01"), qty_increment=D("0.0001"), fractionable=True)
_ids = itertools.count(1)


def engine(model: FillModel | None = None) -> FillEngine:
    built = FillEngine(model)
    built.set_instrument(AAPL)
    built.set_instrument(FRAC)
    return built


def place(
    eng: FillEngine,
    side: Side,
    order_type: OrderType,
    qty: str | None = "10",
    tif: TimeInForce = TimeInForce.DAY,
    symbol: str = "AAPL",
    **prices: str,
) -> tuple[Order, list[EngineEvent]]:
    request = OrderRequest(
        symbol=symbol,
        side=side,
        order_type=order_type,
        time_in_force=tif,
        qty=None if qty is None else D(qty),
        **{k: D(v) for k, v in prices.items()},  # type: ignore[arg-type]
    )
    instrument = AAPL if symbol == "AAPL" else FRAC
    order = new_order(request, instrument, order_id=f"o{next(_ids)}", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    return order, eng.add(order, 1)


def quote(
    eng: FillEngine,
    bid: str,
    ask: str,
    bid_size: str = "100",
    ask_size: str = "100",
    symbol: str = "AAPL",
) -> list[EngineEvent]:
    return eng.on_quote(Quote(symbol, D(bid), D(ask), D(bid_size), D(ask_size), 10))


def trade(eng: FillEngine, price: str) -> list[EngineEvent]:
    return eng.on_trade(Trade("AAPL", D(price), D(100), 10))


def fills(events: list[EngineEvent]) -> list[tuple[Decimal, Decimal]]:
    return [(e.qty, e.price) for e in events if isinstance(e, Fill)]


# ---- market orders ---------------------------------------------------------------


def test_market_buy_fills_at_the_ask_and_market_sell_at_the_bid() -> None:
    eng = engine()
    quote(eng, "99.98", "100.02")
    buy, buy_events = place(eng, Side.BUY, OrderType.MARKET)
    sell, sell_events = place(eng, Side.SELL, OrderType.MARKET)
    assert fills(buy_events) == [(D(10), D("100.02"))]
    assert fills(sell_events) == [(D(10), D("99.98"))]
    assert buy.status is OrderStatus.FILLED and sell.status is OrderStatus.FILLED
    assert len(eng) == 0


def test_market_order_without_a_quote_waits_for_the_first_quote() -> None:
    eng = engine()
    order, events = place(eng, Side.BUY, OrderType.MARKET)
    assert events == [] and order.status is OrderStatus.ACCEPTED
    assert fills(quote(eng, "50.00", "50.05")) == [(D(10), D("50.05"))]


def test_displayed_size_model_fills_the_remainder_on_later_quotes() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="4")
    order, events = place(eng, Side.BUY, OrderType.MARKET)
    assert fills(events) == [(D(4), D("100.00"))]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert fills(quote(eng, "100.00", "100.01", ask_size="5")) == [(D(5), D("100.01"))]
    assert fills(quote(eng, "100.00", "100.03", ask_size="50")) == [(D(1), D("100.03"))]
    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, D(10))
    assert order.filled_avg_price == D("100.008")  # 1000.08 / 10


def test_displayed_size_is_shared_by_the_orders_filling_on_one_quote() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    first, _ = place(eng, Side.BUY, OrderType.MARKET, qty="6")
    second, _ = place(eng, Side.BUY, OrderType.MARKET, qty="6")
    assert fills(quote(eng, "9.99", "10.00", ask_size="8")) == [
        (D(6), D("10.00")),
        (D(2), D("10.00")),
    ]
    assert first.status is OrderStatus.FILLED
    assert second.filled_qty == D(2)


def test_slippage_moves_the_price_against_the_trader_rounded_to_the_tick() -> None:
    eng = engine(FillModel(slippage_bps=D(5)))
    quote(eng, "99.00", "100.00")
    _, buy_events = place(eng, Side.BUY, OrderType.MARKET)
    _, sell_events = place(eng, Side.SELL, OrderType.MARKET)
    # 100.00 * 1.0005 = 100.05 exactly; 99.00 * 0.9995 = 98.9505 -> floored to 98.95.
    assert fills(buy_events) == [(D(10), D("100.05"))]
    assert fills(sell_events) == [(D(10), D("98.95"))]


def test_off_grid_quote_price_is_rounded_away_from_the_trader() -> None:
    eng = engine()
    quote(eng, "99.994", "100.001")
    _, buy_events = place(eng, Side.BUY, OrderType.MARKET)
    _, sell_events = place(eng, Side.SELL, OrderType.MARKET)
    assert fills(buy_events) == [(D(10), D("100.01"))]
    assert fills(sell_events) == [(D(10), D("99.99"))]


def test_notional_market_buy_gets_whole_increments_for_the_dollars() -> None:
    eng = engine()
    quote(eng, "29.99", "30.00", symbol="FRAC")
    request = OrderRequest("FRAC", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D(100))
    order = new_order(request, FRAC, order_id="n1", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    assert fills(eng.add(order, 1)) == [(D("3.3333"), D("30.00"))]
    assert order.status is OrderStatus.FILLED
    assert order.filled_notional == D("99.999")


def test_notional_too_small_for_one_increment_is_canceled() -> None:
    eng = engine()
    quote(eng, "29.99", "30.00", symbol="FRAC")
    request = OrderRequest("FRAC", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D("0.001"))
    order = new_order(request, FRAC, order_id="n2", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    events = eng.add(order, 1)
    assert fills(events) == [] and order.status is OrderStatus.CANCELED
    assert isinstance(events[0], OrderClosed)


# ---- limit orders ----------------------------------------------------------------


def test_marketable_limit_buy_fills_immediately_at_the_better_ask() -> None:
    eng = engine()
    quote(eng, "99.90", "100.00")
    _, events = place(eng, Side.BUY, OrderType.LIMIT, limit_price="100.50")
    assert fills(events) == [(D(10), D("100.00"))]


def test_limit_buy_rests_until_ask_crosses() -> None:
    eng = engine()
    quote(eng, "100.00", "100.10")
    order, events = place(eng, Side.BUY, OrderType.LIMIT, limit_price="99.50")
    assert events == []
    assert fills(quote(eng, "99.50", "99.60")) == []
    assert fills(quote(eng, "99.40", "99.50")) == [(D(10), D("99.50"))]
    assert order.status is OrderStatus.FILLED


def test_limit_sell_rests_until_bid_crosses_and_fills_at_the_better_bid() -> None:
    eng = engine()
    quote(eng, "100.00", "100.10")
    place(eng, Side.SELL, OrderType.LIMIT, limit_price="101.00")
    assert fills(quote(eng, "100.99", "101.05")) == []
    assert fills(quote(eng, "101.20", "101.30")) == [(D(10), D("101.20"))]


def test_slippage_never_pushes_a_fill_beyond_the_limit() -> None:
    eng = engine(FillModel(slippage_bps=D(50)))
    quote(eng, "99.00", "100.00")
    _, events = place(eng, Side.BUY, OrderType.LIMIT, limit_price="100.20")
    assert fills(events) == [(D(10), D("100.20"))]


def test_best_priced_limit_fills_first_then_time_priority() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.00", "101.00")
    early, _ = place(eng, Side.BUY, OrderType.LIMIT, qty="5", limit_price="100.00")
    late, _ = place(eng, Side.BUY, OrderType.LIMIT, qty="5", limit_price="100.00")
    best, _ = place(eng, Side.BUY, OrderType.LIMIT, qty="5", limit_price="100.05")
    events = quote(eng, "99.00", "100.00", ask_size="8")
    assert [e.order_id for e in events if isinstance(e, Fill)] == [best.order_id, early.order_id]
    assert late.filled_qty == 0 and early.filled_qty == D(3)


def test_quote_far_from_resting_limits_produces_nothing() -> None:
    eng = engine()
    quote(eng, "100.00", "100.01")
    for i in range(200):
        place(eng, Side.BUY, OrderType.LIMIT, limit_price=str(D("90.00") - D(i) / 100))
        place(eng, Side.SELL, OrderType.LIMIT, limit_price=str(D("110.00") + D(i) / 100))
    assert quote(eng, "100.50", "100.51") == []
    assert len(eng) == 400


def test_canceled_order_never_fills() -> None:
    eng = engine()
    order, _ = place(eng, Side.BUY, OrderType.LIMIT, limit_price="99.00")
    assert eng.remove(order.order_id) is order
    assert quote(eng, "98.00", "98.50") == []
    assert eng.remove(order.order_id) is None


# ---- stops -----------------------------------------------------------------------


def test_sell_stop_triggers_on_a_trade_at_or_below_the_stop_and_fills_at_the_bid() -> None:
    eng = engine()
    quote(eng, "100.00", "100.05")
    order, _ = place(eng, Side.SELL, OrderType.STOP, stop_price="99.00")
    assert trade(eng, "99.01") == []
    assert quote(eng, "98.90", "98.95") == []  # quotes do not arm stops by default
    events = trade(eng, "99.00")
    assert isinstance(events[0], OrderTriggered)
    assert fills(events) == [(D(10), D("98.90"))]
    assert order.status is OrderStatus.FILLED


def test_buy_stop_triggers_on_a_trade_at_or_above_the_stop() -> None:
    eng = engine()
    quote(eng, "100.00", "100.05")
    place(eng, Side.BUY, OrderType.STOP, stop_price="101.00")
    assert trade(eng, "100.99") == []
    assert fills(trade(eng, "101.10")) == [(D(10), D("100.05"))]


def test_stop_can_be_configured_to_trigger_on_the_quote() -> None:
    eng = engine(FillModel(stop_trigger=StopTrigger.QUOTE))
    quote(eng, "100.00", "100.05")
    place(eng, Side.SELL, OrderType.STOP, stop_price="99.00")
    assert trade(eng, "98.00") == []
    assert fills(quote(eng, "99.00", "99.02")) == [(D(10), D("99.00"))]


def test_triggered_stop_limit_fills_at_once_when_the_quote_is_within_the_limit() -> None:
    eng = engine()
    quote(eng, "100.00", "100.05")
    order, _ = place(eng, Side.BUY, OrderType.STOP_LIMIT, stop_price="101.00", limit_price="101.20")
    events = trade(eng, "101.00")
    assert [type(e) for e in events] == [OrderTriggered, Fill]
    assert fills(events) == [(D(10), D("100.05"))]
    assert order.triggered and order.status is OrderStatus.FILLED


def test_triggered_stop_limit_waits_for_the_ask_to_reach_the_limit() -> None:
    eng = engine()
    quote(eng, "101.40", "101.50")
    order, _ = place(eng, Side.BUY, OrderType.STOP_LIMIT, stop_price="101.00", limit_price="101.20")
    assert [type(e) for e in trade(eng, "101.45")] == [OrderTriggered]
    assert order.status is OrderStatus.ACCEPTED
    assert fills(quote(eng, "101.10", "101.20")) == [(D(10), D("101.20"))]


def test_trailing_sell_stop_by_price_follows_the_high_water_mark() -> None:
    eng = engine()
    quote(eng, "99.95", "100.05")
    trade(eng, "100.00")
    order, _ = place(eng, Side.SELL, OrderType.TRAILING_STOP, trail_price="3.00")
    assert trade(eng, "105.00") == []
    assert trade(eng, "102.01") == []  # stop is 105 - 3 = 102
    events = trade(eng, "102.00")
    assert isinstance(events[0], OrderTriggered) and events[0].water_mark == D("105.00")
    assert fills(events) == [(D(10), D("99.95"))]
    assert order.status is OrderStatus.FILLED


def test_trailing_buy_stop_by_percent_follows_the_low_water_mark() -> None:
    eng = engine()
    quote(eng, "99.95", "100.05")
    trade(eng, "100.00")
    order, _ = place(eng, Side.BUY, OrderType.TRAILING_STOP, trail_percent="10")
    assert trade(eng, "80.00") == []
    assert trade(eng, "87.99") == []  # stop is 80 * 1.10 = 88
    assert isinstance(trade(eng, "88.00")[0], OrderTriggered)
    assert order.water_mark == D("80.00")


def test_trailing_stop_placed_before_any_price_anchors_on_the_first_one() -> None:
    eng = engine()
    order, _ = place(eng, Side.SELL, OrderType.TRAILING_STOP, trail_price="1.00")
    assert trade(eng, "50.00") == []
    assert eng.water_mark(order.order_id) == D("50.00")
    assert trade(eng, "49.00") != []


def test_water_marks_are_reported_when_set_and_when_they_move_only() -> None:
    eng = engine()
    trade(eng, "100.00")
    order, _ = place(eng, Side.SELL, OrderType.TRAILING_STOP, trail_price="3.00")
    assert eng.take_water_marks() == {order.order_id: D("100.00")}
    trade(eng, "99.00")  # against the trail: the high-water mark stays
    assert eng.take_water_marks() == {}
    trade(eng, "104.00")
    trade(eng, "105.00")
    assert eng.take_water_marks() == {order.order_id: D("105.00")}  # the latest move only
    assert eng.take_water_marks() == {}


def test_water_marks_that_could_not_be_saved_are_offered_again_unless_they_moved() -> None:
    eng = engine()
    trade(eng, "100.00")
    first, _ = place(eng, Side.SELL, OrderType.TRAILING_STOP, trail_price="3.00")
    second, _ = place(eng, Side.SELL, OrderType.TRAILING_STOP, trail_price="5.00")
    lost = eng.take_water_marks()
    assert lost == {first.order_id: D("100.00"), second.order_id: D("100.00")}
    trade(eng, "101.00")  # both move again before the retry
    eng.unsaved_water_marks({**lost, "gone": D(1)})
    assert eng.take_water_marks() == {first.order_id: D("101.00"), second.order_id: D("101.00")}
    eng.unsaved_water_marks({first.order_id: D("101.00")})
    assert eng.take_water_marks() == {first.order_id: D("101.00")}


def test_water_marks_of_orders_that_left_the_book_are_not_reported() -> None:
    eng = engine()
    trade(eng, "100.00")
    order, _ = place(eng, Side.BUY, OrderType.TRAILING_STOP, trail_price="3.00")
    trade(eng, "95.00")
    eng.remove(order.order_id)
    assert eng.take_water_marks() == {}


def test_engine_restarted_from_saved_water_mark_keeps_the_stop_tight() -> None:
    before = engine()
    trade(before, "100.00")
    order, _ = place(before, Side.SELL, OrderType.TRAILING_STOP, trail_price="3.00")
    trade(before, "105.00")
    saved = before.take_water_marks()[order.order_id]
    # The process restarts while the market falls to 102.50; the stop stands at 105 - 3.
    after = engine()
    quote(after, "102.45", "102.55")
    trade(after, "102.50")
    order.water_mark = saved  # as the broker reloads it from its row
    assert after.add(order, 2) == []
    triggered = trade(after, "102.00")
    assert isinstance(triggered[0], OrderTriggered) and triggered[0].water_mark == D("105.00")


def test_engine_restarted_without_a_saved_mark_would_trail_the_lower_price() -> None:
    # The contrast that makes saving necessary: anchored at 102.50, 102.00 does not trigger.
    after = engine()
    quote(after, "102.45", "102.55")
    trade(after, "102.50")
    place(after, Side.SELL, OrderType.TRAILING_STOP, trail_price="3.00")
    assert trade(after, "102.00") == []


@settings(max_examples=150, deadline=None)
@given(
    script=st.lists(
        st.one_of(
            st.tuples(st.just("price"), st.integers(min_value=9000, max_value=11000)),
            st.tuples(
                st.just("order"),
                st.integers(min_value=1, max_value=800),
                st.booleans(),
                st.booleans(),
            ),
            st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
        ),
        max_size=60,
    )
)
def test_trailing_stops_trigger_exactly_when_a_per_order_water_mark_says_so(
    script: list[tuple[object, ...]],
) -> None:
    """The grouped ladder must agree with the naive model: one water mark per order."""
    eng = engine()
    quote(eng, "0.01", "999.99")  # a market that never fills: we only watch triggers
    naive: dict[str, tuple[Side, bool, Decimal, Decimal | None]] = {}
    persisted: dict[str, Decimal] = {}  # what the broker would have saved, batch by batch
    for step in script:
        if step[0] == "price":
            price = D(int(step[1])) / 100  # type: ignore[call-overload]
            expected = set()
            for oid, (side, by_percent, trail, mark) in list(naive.items()):
                if mark is None:
                    mark = price
                mark = max(mark, price) if side is Side.SELL else min(mark, price)
                if by_percent:
                    level = (
                        mark * (1 - trail / 100) if side is Side.SELL else mark * (1 + trail / 100)
                    )
                else:
                    level = mark - trail if side is Side.SELL else mark + trail
                hit = price <= level if side is Side.SELL else price >= level
                if hit:
                    expected.add(oid)
                    del naive[oid]
                else:
                    naive[oid] = (side, by_percent, trail, mark)
            got = {
                e.order_id
                for e in eng.on_trade(Trade("AAPL", price, D(1), 10))
                if isinstance(e, OrderTriggered)
            }
            assert got == expected
            persisted.update(eng.take_water_marks())
            for oid, (_, _, _, mark) in naive.items():
                assert persisted[oid] == mark  # saved marks never lag the live ones
        elif step[0] == "order":
            _, cents, is_sell, use_percent = step
            trail = D(int(cents)) / 100  # type: ignore[call-overload]
            side = Side.SELL if is_sell else Side.BUY
            kwargs = (
                {"trail_percent": str(min(trail, D("99")))}
                if use_percent
                else {"trail_price": str(trail)}
            )
            order, _ = place(eng, side, OrderType.TRAILING_STOP, tif=TimeInForce.GTC, **kwargs)
            last = eng.last_prices("AAPL")[2]
            naive[order.order_id] = (
                side,
                bool(use_percent),
                order.trail_percent or order.trail_price or D(0),
                last,
            )
        elif naive:
            victim = sorted(naive)[int(step[1]) % len(naive)]  # type: ignore[call-overload]
            eng.remove(victim)
            del naive[victim]


# ---- time in force ---------------------------------------------------------------


def test_ioc_fills_what_it_can_now_and_cancels_the_rest() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="3")
    order, events = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.IOC, limit_price="100.00")
    assert fills(events) == [(D(3), D("100.00"))]
    assert order.status is OrderStatus.CANCELED and order.filled_qty == D(3)
    assert len(eng) == 0


def test_ioc_limit_that_is_not_marketable_is_canceled_unfilled() -> None:
    eng = engine()
    quote(eng, "99.99", "100.00")
    order, events = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.IOC, limit_price="99.00")
    assert fills(events) == [] and order.status is OrderStatus.CANCELED


def test_ioc_without_a_quote_is_canceled() -> None:
    order, _ = place(engine(), Side.SELL, OrderType.MARKET, tif=TimeInForce.IOC)
    assert order.status is OrderStatus.CANCELED


def test_fok_without_enough_displayed_size_is_killed_with_no_fill() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="9")
    order, events = place(eng, Side.BUY, OrderType.MARKET, tif=TimeInForce.FOK)
    assert fills(events) == [] and order.status is OrderStatus.CANCELED
    assert order.filled_qty == 0


def test_fok_with_enough_size_fills_entirely_at_once() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="10")
    order, events = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.FOK, limit_price="100.00")
    assert fills(events) == [(D(10), D("100.00"))] and order.status is OrderStatus.FILLED


def test_day_orders_expire_at_the_session_close_and_gtc_orders_survive() -> None:
    eng = engine()
    day, _ = place(eng, Side.BUY, OrderType.LIMIT, limit_price="90.00")
    stop, _ = place(eng, Side.SELL, OrderType.STOP, stop_price="80.00")
    gtc, _ = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.GTC, limit_price="90.00")
    events = eng.close_session(99)
    assert {e.order_id for e in events if isinstance(e, OrderClosed)} == {
        day.order_id,
        stop.order_id,
    }
    assert day.status is OrderStatus.EXPIRED and stop.status is OrderStatus.EXPIRED
    assert gtc.status is OrderStatus.ACCEPTED and gtc.order_id in eng


# ---- commissions and fill ids ----------------------------------------------------


def test_per_share_commission_is_charged_per_fill() -> None:
    eng = engine(FillModel(commission=CommissionModel(per_share=D("0.005"))))
    quote(eng, "99.99", "100.00")
    _, events = place(eng, Side.BUY, OrderType.MARKET, qty="101")
    (fill,) = [e for e in events if isinstance(e, Fill)]
    assert fill.commission == D("0.51")  # 0.505 rounds half up


def test_bps_commission_is_a_share_of_notional() -> None:
    eng = engine(FillModel(commission=CommissionModel(bps=D(10))))
    quote(eng, "99.99", "100.00")
    _, events = place(eng, Side.BUY, OrderType.MARKET)
    (fill,) = [e for e in events if isinstance(e, Fill)]
    assert fill.commission == D("1.00")


def test_commission_is_zero_by_default() -> None:
    eng = engine()
    quote(eng, "99.99", "100.00")
    _, events = place(eng, Side.BUY, OrderType.MARKET)
    assert [e.commission for e in events if isinstance(e, Fill)] == [D("0.00")]


def test_fill_ids_are_deterministic_per_order_and_fill_number() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="4")
    order, events = place(eng, Side.BUY, OrderType.MARKET, qty="6")
    later = quote(eng, "99.99", "100.00", ask_size="4")
    ids = [e.fill_id for e in events + later if isinstance(e, Fill)]
    assert ids == [f"{order.order_id}-1", f"{order.order_id}-2"]


def test_open_orders_of_an_account_follow_fills_cancels_and_closes() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    buy, _ = place(eng, Side.BUY, OrderType.LIMIT, "10", limit_price="100.00")
    sell, _ = place(eng, Side.SELL, OrderType.LIMIT, "7", limit_price="110.00")
    place(eng, Side.BUY, OrderType.LIMIT, "3", symbol="FRAC", limit_price="5.00")
    assert eng.open_orders_of("acct", "AAPL") == OpenOrders(D(10), D(7), 3)
    assert eng.open_orders_of("acct", "AAPL", excluding=sell.order_id) == OpenOrders(D(10), D(0), 2)
    assert eng.open_orders_of("someone-else", "AAPL") == OpenOrders(D(0), D(0), 0)

    quote(eng, "99.00", "100.00", ask_size="4")
    assert eng.open_orders_of("acct", "AAPL") == OpenOrders(D(6), D(7), 3)
    eng.remove(sell.order_id)
    quote(eng, "99.00", "100.00")
    assert buy.status is OrderStatus.FILLED
    assert eng.open_orders_of("acct", "AAPL") == OpenOrders(D(0), D(0), 1)


# ---- the sell side and the quote-less cases of every rule ------------------------


def test_sells_use_up_the_displayed_bid_shared_by_the_orders_on_one_quote() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    first, _ = place(eng, Side.SELL, OrderType.MARKET, qty="6")
    second, _ = place(eng, Side.SELL, OrderType.MARKET, qty="6")
    assert fills(quote(eng, "10.00", "10.01", bid_size="8")) == [
        (D(6), D("10.00")),
        (D(2), D("10.00")),
    ]
    assert (first.status, second.filled_qty) == (OrderStatus.FILLED, D(2))
    third, events = place(eng, Side.SELL, OrderType.MARKET, qty="1")
    assert fills(events) == [] and third.status is OrderStatus.ACCEPTED


def test_fok_sell_without_enough_displayed_bid_is_killed_and_with_enough_fills() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", bid_size="9")
    killed, events = place(eng, Side.SELL, OrderType.MARKET, tif=TimeInForce.FOK)
    assert fills(events) == [] and killed.status is OrderStatus.CANCELED
    quote(eng, "99.99", "100.00", bid_size="10")
    filled, events = place(eng, Side.SELL, OrderType.MARKET, tif=TimeInForce.FOK)
    assert fills(events) == [(D(10), D("99.99"))] and filled.status is OrderStatus.FILLED


def test_fok_without_a_quote_is_killed_on_either_side() -> None:
    for side in (Side.BUY, Side.SELL):
        order, events = place(engine(), side, OrderType.MARKET, tif=TimeInForce.FOK)
        assert fills(events) == [] and order.status is OrderStatus.CANCELED


def test_fok_limit_that_is_not_marketable_is_killed_on_either_side() -> None:
    eng = engine()
    quote(eng, "99.99", "100.00")
    buy, _ = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.FOK, limit_price="99.99")
    sell, _ = place(eng, Side.SELL, OrderType.LIMIT, tif=TimeInForce.FOK, limit_price="100.00")
    assert buy.status is OrderStatus.CANCELED and sell.status is OrderStatus.CANCELED
    _, events = place(eng, Side.SELL, OrderType.LIMIT, tif=TimeInForce.FOK, limit_price="99.99")
    assert fills(events) == [(D(10), D("99.99"))]


def test_fok_without_the_displayed_size_model_fills_whatever_the_size() -> None:
    eng = engine()
    quote(eng, "99.99", "100.00", bid_size="1", ask_size="1")
    order, events = place(eng, Side.SELL, OrderType.MARKET, tif=TimeInForce.FOK)
    assert fills(events) == [(D(10), D("99.99"))] and order.status is OrderStatus.FILLED


def test_a_quote_without_a_bid_fills_buys_but_not_sells() -> None:
    eng = engine()
    sell, _ = place(eng, Side.SELL, OrderType.MARKET)
    buy, _ = place(eng, Side.BUY, OrderType.MARKET)
    assert fills(quote(eng, "0", "100.00")) == [(D(10), D("100.00"))]
    assert (buy.status, sell.status) == (OrderStatus.FILLED, OrderStatus.ACCEPTED)
    assert eng.last_prices("AAPL")[:2] == (None, D("100.00"))


def test_sell_slippage_never_goes_below_one_tick() -> None:
    eng = engine(FillModel(slippage_bps=D(9999)))
    quote(eng, "0.05", "0.06")
    _, events = place(eng, Side.SELL, OrderType.MARKET)
    assert fills(events) == [(D(10), D("0.01"))]


def test_a_sell_limit_fills_at_the_bid_when_it_is_better_and_never_below_the_limit() -> None:
    eng = engine(FillModel(slippage_bps=D(50)))
    quote(eng, "100.00", "100.02")
    _, events = place(eng, Side.SELL, OrderType.LIMIT, limit_price="99.80")
    assert fills(events) == [(D(10), D("99.80"))]  # 100.00 * 0.995 = 99.50, capped at 99.80
    _, events = place(eng, Side.SELL, OrderType.LIMIT, limit_price="99.00")
    assert fills(events) == [(D(10), D("99.50"))]


# ---- price priority on every ladder ------------------------------------------------


def test_the_lowest_sell_limit_fills_first_then_time_priority() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.00", "101.00")
    early, _ = place(eng, Side.SELL, OrderType.LIMIT, qty="5", limit_price="100.00")
    late, _ = place(eng, Side.SELL, OrderType.LIMIT, qty="5", limit_price="100.00")
    best, _ = place(eng, Side.SELL, OrderType.LIMIT, qty="5", limit_price="99.95")
    events = quote(eng, "100.00", "101.00", bid_size="8")
    assert [e.order_id for e in events if isinstance(e, Fill)] == [best.order_id, early.order_id]
    assert late.filled_qty == 0 and early.filled_qty == D(3)


def test_sell_stops_trigger_from_the_highest_stop_down() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "100.00", "100.02", bid_size="5")
    lower, _ = place(eng, Side.SELL, OrderType.STOP, qty="5", stop_price="99.00")
    higher, _ = place(eng, Side.SELL, OrderType.STOP, qty="5", stop_price="100.00")
    events = trade(eng, "98.50")
    triggered = [e.order_id for e in events if isinstance(e, OrderTriggered)]
    assert triggered == [higher.order_id, lower.order_id]
    assert [e.order_id for e in events if isinstance(e, Fill)] == [higher.order_id]
    assert lower.filled_qty == 0


def test_buy_stops_trigger_from_the_lowest_stop_up() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.98", "100.00", ask_size="5")
    higher, _ = place(eng, Side.BUY, OrderType.STOP, qty="5", stop_price="101.00")
    lower, _ = place(eng, Side.BUY, OrderType.STOP, qty="5", stop_price="100.50")
    events = trade(eng, "101.50")
    triggered = [e.order_id for e in events if isinstance(e, OrderTriggered)]
    assert triggered == [lower.order_id, higher.order_id]
    assert [e.order_id for e in events if isinstance(e, Fill)] == [lower.order_id]
    assert higher.filled_qty == 0


# ---- what each event carries ----------------------------------------------------


def test_a_fill_event_carries_the_whole_fill_and_the_tick_time() -> None:
    eng = engine()
    order, _ = place(eng, Side.BUY, OrderType.MARKET, qty="3")
    events = eng.on_quote(Quote("AAPL", D("99.99"), D("100.01"), D(100), D(100), 42, 7))
    assert events == [
        Fill(
            fill_id=f"{order.order_id}-1",
            order_id=order.order_id,
            account_id="acct",
            symbol="AAPL",
            side=Side.BUY,
            qty=D(3),
            price=D("100.01"),
            commission=D("0.00"),
            ts_ns=42,
            order_status=OrderStatus.FILLED,
            order_filled_qty=D(3),
            order_filled_notional=D("300.03"),
            order_fill_count=1,
            explanation=FillExplanation(
                source=PriceSource.QUOTE,
                tick_sequence=7,
                tick_ts_ns=42,
                market_price=D("100.01"),
                bid=D("99.99"),
                ask=D("100.01"),
                bid_size=D(100),
                ask_size=D(100),
            ),
        )
    ]
    assert order.updated_ns == 42


def test_a_closing_event_carries_status_reason_and_time() -> None:
    eng = engine()
    order = new_order(
        OrderRequest("AAPL", Side.SELL, OrderType.MARKET, TimeInForce.IOC, qty=D(1)),
        AAPL,
        order_id="ioc",
        account_id="acct",
        now_ns=1,
    )
    order.transition(OrderStatus.ACCEPTED, 1)
    events = eng.add(order, 7)
    reason = "immediate-or-cancel remainder canceled"
    assert events == [OrderClosed("ioc", "acct", OrderStatus.CANCELED, reason, 7)]
    assert (order.status, order.reason, order.updated_ns) == (OrderStatus.CANCELED, reason, 7)
    assert "ioc" not in eng


def test_a_trigger_event_and_its_fill_carry_the_trade_time() -> None:
    eng = engine()
    quote(eng, "99.00", "99.02")
    order, _ = place(eng, Side.SELL, OrderType.STOP, qty="2", stop_price="99.50")
    events = eng.on_trade(Trade("AAPL", D("99.40"), D(1), 77))
    assert events[0] == OrderTriggered(order.order_id, "acct", 77, None)
    assert [(e.ts_ns, e.account_id) for e in events if isinstance(e, Fill)] == [(77, "acct")]


def test_open_orders_sum_every_order_of_the_symbol_on_each_side() -> None:
    eng = engine()
    place(eng, Side.BUY, OrderType.LIMIT, qty="1", symbol="FRAC", limit_price="1.00")
    place(eng, Side.BUY, OrderType.LIMIT, qty="2", limit_price="90.00")
    place(eng, Side.BUY, OrderType.LIMIT, qty="3", limit_price="91.00")
    place(eng, Side.SELL, OrderType.LIMIT, qty="4", limit_price="110.00")
    place(eng, Side.SELL, OrderType.LIMIT, qty="5", limit_price="111.00")
    assert eng.open_orders_of("acct", "AAPL") == OpenOrders(D(5), D(9), 5)


def test_a_sub_dollar_quote_is_a_price_and_a_zero_one_is_not() -> None:
    eng = engine()
    quote(eng, "0", "0.50")
    assert eng.last_prices("AAPL")[:2] == (None, D("0.50"))


def test_a_resting_sell_limit_fills_when_the_bid_reaches_it_exactly() -> None:
    eng = engine()
    quote(eng, "99.00", "101.00")
    order, _ = place(eng, Side.SELL, OrderType.LIMIT, qty="2", limit_price="100.00")
    assert fills(quote(eng, "100.00", "101.00")) == [(D(2), D("100.00"))]
    assert order.status is OrderStatus.FILLED


def test_a_displayed_size_of_one_share_is_filled() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="1")
    order, events = place(eng, Side.BUY, OrderType.MARKET, qty="3")
    assert fills(events) == [(D(1), D("100.00"))]
    assert order.status is OrderStatus.PARTIALLY_FILLED


def test_a_notional_order_buys_fractions_below_one_share_and_completes() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, "99.99", "100.00", ask_size="0.3", symbol="FRAC")
    request = OrderRequest("FRAC", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D(50))
    order = new_order(request, FRAC, order_id="n3", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    first = fills(eng.add(order, 1))
    status_after_first = order.status
    second = fills(quote(eng, "99.99", "100.00", ask_size="5", symbol="FRAC"))
    assert (first, status_after_first) == ([(D("0.3"), D("100.00"))], OrderStatus.PARTIALLY_FILLED)
    assert (second, order.status) == ([(D("0.2"), D("100.00"))], OrderStatus.FILLED)


def test_a_fok_that_cannot_fill_entirely_is_killed_as_fill_or_kill_on_either_side() -> None:
    eng = engine()
    quote(eng, "99.99", "100.00")
    sell, _ = place(eng, Side.SELL, OrderType.LIMIT, tif=TimeInForce.FOK, limit_price="100.00")
    buy, _ = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.FOK, limit_price="99.99")
    no_quote, _ = place(engine(), Side.SELL, OrderType.MARKET, tif=TimeInForce.FOK)
    for order in (sell, buy, no_quote):
        assert order.status is OrderStatus.CANCELED
        assert order.reason == "fill-or-kill order could not be filled entirely at once"
