"""The fill engine across session edges and group hand-offs, through its public API only.

Each event carries the time of the call that caused it; an auction crosses only its own
symbol; an order that expired is gone from every index; a close that follows an
expiring parent still expires the orders after it; replaced and closed legs follow
their group.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from cift.trading.fills import (
    EngineEvent,
    Fill,
    FillEngine,
    FillModel,
    LegReleased,
    OrderClosed,
    OrderTriggered,
    Quote,
    StopTrigger,
    Trade,
)
from cift.trading.order_classes import (
    ClassedRequest,
    StopLoss,
    TakeProfit,
    accept_group,
    new_group,
    plan_group,
)
from cift.trading.orders import (
    Order,
    OrderClass,
    OrderRequest,
    OrderStatus,
    ReplaceRequest,
    build_replacement,
    new_order,
)
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
MSFT = Instrument("MSFT", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
_ids = itertools.count(1)


def engine(*, displayed: bool = False) -> FillEngine:
    built = FillEngine(FillModel(fill_at_displayed_size=displayed))
    built.set_instrument(AAPL)
    built.set_instrument(MSFT)
    return built


def accepted(
    tif: TimeInForce = TimeInForce.DAY,
    *,
    side: Side = Side.BUY,
    limit: str | None = "100",
    symbol: str = "AAPL",
    order_id: str | None = None,
) -> Order:
    request = OrderRequest(
        symbol=symbol,
        side=side,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        time_in_force=tif,
        qty=D(10),
        limit_price=None if limit is None else D(limit),
    )
    order = new_order(
        request,
        AAPL if symbol == "AAPL" else MSFT,
        order_id=order_id or f"s{next(_ids)}",
        account_id="acct",
        now_ns=1,
    )
    order.transition(OrderStatus.ACCEPTED, 1)
    return order


def closed(events: list[EngineEvent]) -> list[tuple[str, OrderStatus, int]]:
    return [(e.order_id, e.status, e.ts_ns) for e in events if isinstance(e, OrderClosed)]


def fills(events: list[EngineEvent]) -> list[tuple[str, Decimal, int]]:
    return [(e.order_id, e.price, e.ts_ns) for e in events if isinstance(e, Fill)]


def test_an_opening_trade_crosses_only_its_own_symbols_auction() -> None:
    eng = engine()
    apple = accepted(TimeInForce.OPG, limit=None)
    micro = accepted(TimeInForce.OPG, limit=None, symbol="MSFT")
    eng.add(apple, 1)
    eng.add(micro, 1)
    eng.open_session()
    events = eng.on_trade(Trade("AAPL", D(100), D(1), 50))
    assert fills(events) == [(apple.order_id, D(100), 50)]
    assert micro.status is OrderStatus.ACCEPTED and micro.order_id in eng


def test_the_closing_auction_and_missed_openings_happen_at_the_close_time() -> None:
    eng = engine()
    eng.on_trade(Trade("AAPL", D(100), D(1), 5))
    cls = accepted(TimeInForce.CLS, limit=None)
    opg = accepted(TimeInForce.OPG, limit=None, symbol="MSFT")
    eng.add(cls, 6)
    eng.add(opg, 6)
    events = eng.close_session(900)
    assert fills(events) == [(cls.order_id, D(100), 900)]
    assert closed(events) == [(opg.order_id, OrderStatus.EXPIRED, 900)]
    assert opg.reason == "did not cross in the opening auction"


def test_a_closing_auction_expiry_says_it_was_the_closing_auction() -> None:
    eng = engine()
    eng.on_trade(Trade("AAPL", D(100), D(1), 5))
    cheap = accepted(TimeInForce.CLS, limit="99")
    eng.add(cheap, 6)
    assert closed(eng.close_session(900)) == [(cheap.order_id, OrderStatus.EXPIRED, 900)]
    assert cheap.reason == "did not cross in the closing auction at 100"


def test_after_the_close_no_trade_is_an_opening_print_until_the_next_open() -> None:
    eng = engine()
    eng.open_session()
    eng.close_session(900)
    tomorrow = accepted(TimeInForce.OPG, limit=None)
    eng.add(tomorrow, 901)
    assert fills(eng.on_trade(Trade("AAPL", D(100), D(1), 950))) == []  # after hours
    eng.open_session()
    assert fills(eng.on_trade(Trade("AAPL", D(101), D(1), 1000))) == [
        (tomorrow.order_id, D(101), 1000)
    ]


def test_an_expired_day_order_is_gone_from_the_book_it_rested_in() -> None:
    eng = engine()
    resting = accepted(limit="99")
    eng.add(resting, 1)
    events = eng.close_session(900)
    assert closed(events) == [(resting.order_id, OrderStatus.EXPIRED, 900)]
    # The reason goes to the client with the order (and on its OrderClosed event).
    assert resting.reason == "day order expired at the session close"
    assert [e.reason for e in events if isinstance(e, OrderClosed)] == [resting.reason]
    assert resting.order_id not in eng
    assert eng.on_quote(Quote("AAPL", D("98.00"), D("98.50"), D(100), D(100), 1000)) == []


def enter_group(
    eng: FillEngine,
    order_class: OrderClass,
    ids: list[str],
    *,
    side: Side = Side.BUY,
    tif: TimeInForce = TimeInForce.GTC,
    limit: str = "100",
    take: str | None = "110",
    stop: str | None = "90",
    now_ns: int = 1,
) -> tuple[Order, list[Order], list[EngineEvent]]:
    """Plan, build, accept and add a group whose entry (or OCO take-profit) is a limit."""
    request = ClassedRequest(
        OrderRequest("AAPL", side, OrderType.LIMIT, tif, qty=D(10), limit_price=D(limit)),
        order_class,
        None if take is None else TakeProfit(D(take)),
        None if stop is None else StopLoss(stop_price=D(stop)),
    )
    parent, legs = new_group(
        plan_group(request, AAPL),
        AAPL,
        order_ids=ids,
        leg_client_ids=[f"{oid}-client" for oid in ids[1:]],
        account_id="acct",
        now_ns=1,
    )
    accept_group(parent, legs, 1)
    return parent, legs, eng.add_group(parent, legs, now_ns)


def oco(eng: FillEngine, ids: list[str]) -> tuple[Order, Order]:
    """A sell OCO closing a long: take profit at 110, stop at 90, day orders."""
    parent, legs, events = enter_group(
        eng, OrderClass.OCO, ids, side=Side.SELL, tif=TimeInForce.DAY, limit="110"
    )
    assert events == []
    return parent, legs[0]


def test_orders_after_a_leg_canceled_by_its_expiring_parent_still_expire() -> None:
    eng = engine()
    oco(eng, ["a", "b"])
    later = accepted(order_id="c")
    eng.add(later, 1)
    assert closed(eng.close_session(900)) == [
        ("a", OrderStatus.EXPIRED, 900),
        ("b", OrderStatus.CANCELED, 900),
        ("c", OrderStatus.EXPIRED, 900),
    ]
    assert len(eng) == 0


def test_closing_a_removed_parent_cancels_its_legs_at_that_time() -> None:
    eng = engine()
    parent, _ = oco(eng, ["p1", "l1"])
    removed = eng.remove("p1")
    assert removed is parent
    parent.close(OrderStatus.CANCELED, 40, "canceled by the trader")
    assert closed(eng.close_legs(parent, 40)) == [("l1", OrderStatus.CANCELED, 40)]


def test_an_entry_expiring_after_a_fill_keeps_the_exits_it_released() -> None:
    eng = engine(displayed=True)
    parent, _legs, _ = enter_group(eng, OrderClass.BRACKET, ["e", "tp", "sl"])
    eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(4), 5))  # fills 4
    eng.remove("e")
    parent.close(OrderStatus.EXPIRED, 50, "expired")
    assert eng.close_legs(parent, 50) == []
    assert "tp" in eng and "sl" in eng


def test_a_replaced_leg_takes_its_place_held_or_working_and_acts_at_once() -> None:
    eng = engine()
    parent, _ = oco(eng, ["p2", "l2"])
    eng.remove("p2")
    successor = build_replacement(
        parent, ReplaceRequest(limit_price=D(99)), AAPL, order_id="p3", now_ns=60
    )
    parent.replace_by("p3", 60)
    successor.accept(60)
    eng.on_quote(Quote("AAPL", D("99.50"), D("99.60"), D(100), D(100), 55))
    events = eng.replaced("p2", successor, 61)
    assert fills(events) == [("p3", D("99.50"), 61)]  # the new limit is marketable at once
    assert closed(events) == [("l2", OrderStatus.CANCELED, 61)]  # its OCO sibling


def test_a_replaced_held_leg_waits_held() -> None:
    eng = engine()
    _parent, legs, _ = enter_group(eng, OrderClass.OTO, ["e2", "tp2"], stop=None)
    held = eng.remove("tp2")
    assert held is legs[0]
    successor = build_replacement(
        legs[0], ReplaceRequest(limit_price=D(111)), AAPL, order_id="tp3", now_ns=5
    )
    legs[0].replace_by("tp3", 5)
    successor.hold(5)
    assert eng.replaced("tp2", successor, 5) == []
    assert eng.get("tp3") is successor and successor.status is OrderStatus.HELD


def test_only_a_resting_trailing_stop_has_a_water_mark() -> None:
    eng = engine()
    plain = accepted(limit="50")
    eng.add(plain, 1)
    assert eng.water_mark(plain.order_id) is None
    assert eng.water_mark("never-placed") is None


def test_every_closing_auction_order_that_crosses_fills() -> None:
    eng = engine()
    eng.on_trade(Trade("AAPL", D(100), D(1), 5))
    first, second = accepted(TimeInForce.CLS, limit=None), accepted(TimeInForce.CLS, limit="101")
    eng.add(first, 6)
    eng.add(second, 6)
    assert fills(eng.close_session(900)) == [
        (first.order_id, D(100), 900),
        (second.order_id, D(100), 900),
    ]


def test_an_opening_order_that_saw_only_pre_market_trades_expires_at_the_close() -> None:
    eng = engine()
    opg = accepted(TimeInForce.OPG, limit=None)
    eng.add(opg, 1)
    eng.on_trade(Trade("AAPL", D(100), D(1), 5))  # before the open: no opening print
    assert closed(eng.close_session(900)) == [(opg.order_id, OrderStatus.EXPIRED, 900)]
    assert opg.reason == "did not cross in the opening auction"


def gtd(expire_ns: int, limit: str = "99") -> Order:
    request = OrderRequest(
        "AAPL",
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.GTD,
        qty=D(10),
        limit_price=D(limit),
        expire_ns=expire_ns,
    )
    order = new_order(request, AAPL, order_id=f"g{next(_ids)}", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    return order


def test_gtd_orders_due_expire_at_the_call_time_even_after_one_that_left_early() -> None:
    eng = engine()
    gone, due, later = gtd(100), gtd(100), gtd(500)
    for order in (gone, due, later):
        eng.add(order, 1)
    eng.remove(gone.order_id)
    events = eng.expire_due(150)
    assert closed(events) == [(due.order_id, OrderStatus.EXPIRED, 150)]
    assert due.reason == "good-till-date order expired at its expire_at"
    assert [e.reason for e in events if isinstance(e, OrderClosed)] == [due.reason]
    assert due.order_id not in eng and later.order_id in eng
    # The expired order is out of its book: a price through its limit fills only `later`.
    events = eng.on_quote(Quote("AAPL", D("98.00"), D("98.50"), D(100), D(100), 160))
    assert fills(events) == [(later.order_id, D("98.50"), 160)]


def test_an_entry_fill_releases_its_exits_for_the_account_at_the_tick_time() -> None:
    eng = engine(displayed=True)
    _parent, legs, _ = enter_group(eng, OrderClass.BRACKET, ["en", "tpx", "slx"])
    events = eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(4), 7))
    released = [e for e in events if isinstance(e, LegReleased)]
    assert released == [
        LegReleased("tpx", "acct", D(4), 7),
        LegReleased("slx", "acct", D(4), 7),
    ]
    assert [(leg.status, leg.updated_ns, leg.qty) for leg in legs] == [
        (OrderStatus.ACCEPTED, 7, D(4)),
        (OrderStatus.ACCEPTED, 7, D(4)),
    ]
    # Released in the tick, the take-profit trades on the same quote's bid only if it
    # reaches 110; a crossed quote shows it fills at that tick's time.
    events = eng.on_quote(Quote("AAPL", D("110.00"), D("100.00"), D(100), D(3), 8))
    assert ("tpx", D("110.00"), 8) in fills(events)
    assert "slx" not in eng


def bracket(eng: FillEngine, ids: list[str]) -> tuple[Order, list[Order]]:
    parent, legs, _ = enter_group(eng, OrderClass.BRACKET, ids)
    return parent, legs


def test_an_entry_canceled_unfilled_cancels_its_held_exits_at_that_time() -> None:
    eng = engine()
    parent, legs = bracket(eng, ["e9", "tp9", "sl9"])
    eng.remove("e9")
    parent.close(OrderStatus.CANCELED, 30, "canceled by the trader")
    reason = "canceled with its parent order e9"
    assert eng.close_legs(parent, 30) == [
        OrderClosed("tp9", "acct", OrderStatus.CANCELED, reason, 30),
        OrderClosed("sl9", "acct", OrderStatus.CANCELED, reason, 30),
    ]
    assert [(leg.status, leg.updated_ns, leg.reason) for leg in legs] == [
        (OrderStatus.CANCELED, 30, reason),
        (OrderStatus.CANCELED, 30, reason),
    ]
    assert "tp9" not in eng and "tp9" not in eng.contingent and len(eng.contingent) == 0


def test_working_exits_grow_with_each_further_entry_fill() -> None:
    eng = engine(displayed=True)
    bracket(eng, ["e8", "tp8", "sl8"])
    eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(4), 7))
    events = eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(3), 9))
    assert [e for e in events if isinstance(e, LegReleased)] == [
        LegReleased("tp8", "acct", D(7), 9),
        LegReleased("sl8", "acct", D(7), 9),
    ]


def test_every_event_carries_the_time_of_the_tick_that_caused_it() -> None:
    eng = engine()
    seller = accepted(side=Side.SELL, limit=None)
    bid_taker = accepted(side=Side.SELL, limit="101")
    ask_taker = accepted(limit="99")
    for order in (seller, bid_taker, ask_taker):
        assert eng.add(order, 1) == []
    tp, sl = oco(eng, ["tp7", "sl7"])
    by_tick = {
        20: eng.on_quote(Quote("AAPL", D(100), D("100.50"), D(100), D(100), 20)),
        30: eng.on_quote(Quote("AAPL", D("101.50"), D("98.50"), D(100), D(100), 30)),
        40: eng.on_trade(Trade("AAPL", D(89), D(1), 40)),
    }
    assert fills(by_tick[20]) == [(seller.order_id, D(100), 20)]
    assert fills(by_tick[30]) == [
        (ask_taker.order_id, D("98.50"), 30),
        (bid_taker.order_id, D("101.50"), 30),
    ]
    assert fills(by_tick[40]) == [("sl7", D("101.50"), 40)]
    assert closed(by_tick[40]) == [("tp7", OrderStatus.CANCELED, 40)]
    assert all(event.ts_ns == ts for ts, events in by_tick.items() for event in events)
    assert (tp.status, tp.updated_ns, sl.status) == (OrderStatus.CANCELED, 40, OrderStatus.FILLED)


def test_a_day_entry_expiring_part_filled_keeps_its_exits_working() -> None:
    eng = engine(displayed=True)
    _parent, _legs, _ = enter_group(
        eng, OrderClass.BRACKET, ["de", "dtp", "dsl"], tif=TimeInForce.DAY
    )
    eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(4), 5))
    assert closed(eng.close_session(900)) == [
        ("de", OrderStatus.EXPIRED, 900),
        ("dsl", OrderStatus.EXPIRED, 900),
        ("dtp", OrderStatus.EXPIRED, 900),
    ]  # its exits are day orders too, so they expire with the session, not with the entry


def test_an_oco_exit_that_fills_on_entering_cancels_its_sibling_at_once() -> None:
    eng = engine()
    eng.on_quote(Quote("AAPL", D(111), D("111.10"), D(100), D(100), 3))
    _parent, legs, events = enter_group(
        eng, OrderClass.OCO, ["op", "ol"], side=Side.SELL, limit="110", now_ns=9
    )
    assert fills(events) == [("op", D(111), 9)]
    reason = "canceled because its oco exit op filled"
    assert [e for e in events if isinstance(e, OrderClosed)] == [
        OrderClosed("ol", "acct", OrderStatus.CANCELED, reason, 9)
    ]
    assert (legs[0].status, legs[0].updated_ns, legs[0].reason) == (
        OrderStatus.CANCELED,
        9,
        reason,
    )
    assert len(eng) == 0 and len(eng.contingent) == 0


def test_a_group_entering_reports_what_each_of_its_orders_did() -> None:
    eng = engine()
    eng.on_trade(Trade("AAPL", D(89), D(1), 2))  # already through the stop; no quote yet
    _parent, legs, events = enter_group(
        eng, OrderClass.OCO, ["gp", "gl"], side=Side.SELL, limit="110", now_ns=9
    )
    assert events == [OrderTriggered("gl", "acct", 9)]  # waits for a bid to sell at
    assert "gp" in eng and legs[0].triggered


def test_a_restarted_group_keeps_its_open_orders_and_exiting_state() -> None:
    eng = engine()
    eng.link("rp", OrderClass.BRACKET, ["rtp", "rsl"], open_ids={"rtp"}, exited=True)
    group = eng.contingent.group_of("rtp")
    assert group is not None and group.open_ids == {"rtp"} and group.exited
    assert "rsl" not in eng.contingent


FRAC = Instrument("FRAC", tick_size=D("0.01"), qty_increment=D("0.0001"), fractionable=True)


def test_a_sell_slipped_between_ticks_rounds_down_to_the_tick() -> None:
    eng = FillEngine(FillModel(slippage_bps=D(1)))
    eng.set_instrument(AAPL)
    eng.on_quote(Quote("AAPL", D("100.01"), D("100.02"), D(100), D(100), 5))
    sell = accepted(side=Side.SELL, limit=None)
    assert fills(eng.add(sell, 6)) == [(sell.order_id, D("99.99"), 6)]  # 99.999999, floored


def test_a_sub_dollar_bid_is_the_sell_price() -> None:
    eng = engine()
    eng.on_quote(Quote("AAPL", D("0.50"), D("0.51"), D(100), D(100), 5))
    sell = accepted(side=Side.SELL, limit=None)
    assert fills(eng.add(sell, 6)) == [(sell.order_id, D("0.50"), 6)]


def test_a_notional_order_priced_out_after_a_fill_is_filled_not_canceled() -> None:
    eng = FillEngine(FillModel(fill_at_displayed_size=True))
    eng.set_instrument(FRAC)
    request = OrderRequest("FRAC", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D(50))
    order = new_order(request, FRAC, order_id="n1", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    eng.add(order, 1)
    eng.on_quote(Quote("FRAC", D("99.99"), D(100), D(100), D("0.3"), 5))  # $30 of $50
    events = eng.on_quote(Quote("FRAC", D(299_999), D(300_000), D(100), D(100), 6))
    assert closed(events) == [("n1", OrderStatus.FILLED, 6)]
    assert (order.filled_qty, order.reason) == (D("0.3"), "notional amount used up")


def test_events_of_an_add_carry_the_time_of_the_add() -> None:
    eng = engine()
    eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(100), 5))
    _, _, events = enter_group(eng, OrderClass.BRACKET, ["ae", "atp", "asl"], now_ns=11)
    assert fills(events) == [("ae", D("100.00"), 11)]
    assert [e for e in events if isinstance(e, LegReleased)] == [
        LegReleased("atp", "acct", D(10), 11),
        LegReleased("asl", "acct", D(10), 11),
    ]
    fok = accepted(TimeInForce.FOK, limit="99")  # not marketable: killed at once
    ioc = accepted(TimeInForce.IOC, limit="99")
    assert closed(eng.add(fok, 12)) == [(fok.order_id, OrderStatus.CANCELED, 12)]
    assert closed(eng.add(ioc, 13)) == [(ioc.order_id, OrderStatus.CANCELED, 13)]
    market = accepted(limit=None)
    assert fills(eng.add(market, 15)) == [(market.order_id, D("100.00"), 15)]


def test_a_one_sided_quote_fills_only_on_its_priced_side() -> None:
    eng = engine()
    buy, sell = accepted(limit=None), accepted(side=Side.SELL, limit=None)
    eng.add(buy, 1)
    eng.add(sell, 1)
    events = eng.on_quote(Quote("AAPL", D("99.90"), D(0), D(100), D(0), 5))
    assert fills(events) == [(sell.order_id, D("99.90"), 5)]
    assert buy.status is OrderStatus.ACCEPTED


def test_quote_triggered_buy_stops_arm_when_the_ask_reaches_them() -> None:
    eng = FillEngine(FillModel(stop_trigger=StopTrigger.QUOTE))
    eng.set_instrument(AAPL)
    request = OrderRequest(
        "AAPL", Side.BUY, OrderType.STOP, TimeInForce.DAY, qty=D(10), stop_price=D(101)
    )
    stop = new_order(request, AAPL, order_id="bs", account_id="acct", now_ns=1)
    stop.transition(OrderStatus.ACCEPTED, 1)
    eng.add(stop, 1)
    assert eng.on_quote(Quote("AAPL", D("100.00"), D("100.99"), D(100), D(100), 5)) == []
    events = eng.on_quote(Quote("AAPL", D("100.50"), D("101.00"), D(100), D(100), 6))
    assert events[0] == OrderTriggered("bs", "acct", 6)
    assert fills(events) == [("bs", D("101.00"), 6)]


def test_quote_triggered_trailing_stops_anchor_on_their_own_side_of_the_quote() -> None:
    eng = FillEngine(FillModel(stop_trigger=StopTrigger.QUOTE))
    eng.set_instrument(AAPL)
    eng.on_quote(Quote("AAPL", D("99.00"), D("101.00"), D(100), D(100), 5))
    trails = {}
    for side in (Side.BUY, Side.SELL):
        request = OrderRequest(
            "AAPL", side, OrderType.TRAILING_STOP, TimeInForce.DAY, qty=D(1), trail_price=D(5)
        )
        order = new_order(request, AAPL, order_id=side.value, account_id="acct", now_ns=1)
        order.transition(OrderStatus.ACCEPTED, 1)
        eng.add(order, 6)
        trails[side] = eng.water_mark(order.order_id)
    assert trails == {Side.BUY: D("101.00"), Side.SELL: D("99.00")}


def test_equal_prices_fill_in_arrival_order_on_every_ladder() -> None:
    eng = engine(displayed=True)
    later_id_first = [
        accepted(limit="99", order_id="z-first"),
        accepted(limit="99", order_id="a-second"),
    ]
    for order in later_id_first:
        eng.add(order, 1)
    events = eng.on_quote(Quote("AAPL", D("98.90"), D("99.00"), D(100), D(10), 5))
    assert fills(events) == [("z-first", D("99.00"), 5)]
    for oid in ("z-stop", "a-stop"):
        request = OrderRequest(
            "AAPL", Side.SELL, OrderType.STOP, TimeInForce.DAY, qty=D(10), stop_price=D(95)
        )
        order = new_order(request, AAPL, order_id=oid, account_id="acct", now_ns=1)
        order.transition(OrderStatus.ACCEPTED, 1)
        eng.add(order, 1)
    for oid in ("z-trail", "a-trail"):
        request = OrderRequest(
            "AAPL", Side.SELL, OrderType.TRAILING_STOP, TimeInForce.DAY, qty=D(1), trail_price=D(2)
        )
        order = new_order(request, AAPL, order_id=oid, account_id="acct", now_ns=1)
        order.transition(OrderStatus.ACCEPTED, 1)
        eng.add(order, 1)
    eng.on_trade(Trade("AAPL", D(100), D(1), 6))  # both trails join one group at 100
    triggered = [
        e.order_id
        for e in eng.on_trade(Trade("AAPL", D(94), D(1), 7))
        if isinstance(e, OrderTriggered)
    ]
    assert triggered == ["z-stop", "a-stop", "z-trail", "a-trail"]


def test_a_triggered_stop_limit_never_fills_past_its_limit_even_with_slippage() -> None:
    eng = FillEngine(FillModel(slippage_bps=D(50)))
    eng.set_instrument(AAPL)
    request = OrderRequest(
        "AAPL",
        Side.BUY,
        OrderType.STOP_LIMIT,
        TimeInForce.DAY,
        qty=D(10),
        stop_price=D(100),
        limit_price=D("100.05"),
    )
    order = new_order(request, AAPL, order_id="sl", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    eng.add(order, 1)
    eng.on_quote(Quote("AAPL", D("99.90"), D("100.05"), D(100), D(100), 5))
    events = eng.on_trade(Trade("AAPL", D(100), D(1), 6))
    assert fills(events) == [("sl", D("100.05"), 6)]  # 100.05 * 1.005 capped at the limit


def test_a_notional_order_left_exactly_one_increment_buys_it() -> None:
    eng = FillEngine(FillModel(fill_at_displayed_size=True))
    eng.set_instrument(FRAC)
    request = OrderRequest("FRAC", Side.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D("30.01"))
    order = new_order(request, FRAC, order_id="n2", account_id="acct", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    eng.add(order, 1)
    eng.on_quote(Quote("FRAC", D("99.99"), D(100), D(100), D("0.3"), 5))
    assert order.status is OrderStatus.PARTIALLY_FILLED  # $0.01 left buys 0.0001 at $100
    eng.on_quote(Quote("FRAC", D("99.99"), D(100), D(100), D(1), 6))
    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, D("0.3001"))


def test_canceling_one_auction_order_leaves_the_others_of_its_symbol_waiting() -> None:
    eng = engine()
    first, second = accepted(TimeInForce.OPG, limit=None), accepted(TimeInForce.OPG, limit=None)
    eng.add(first, 1)
    eng.add(second, 1)
    eng.remove(first.order_id)
    eng.open_session()
    assert fills(eng.on_trade(Trade("AAPL", D(100), D(1), 5))) == [(second.order_id, D(100), 5)]


def test_the_engine_lists_and_finds_its_open_and_held_orders() -> None:
    eng = engine()
    resting = accepted(limit="99")
    eng.add(resting, 1)
    _, legs, _ = enter_group(eng, OrderClass.BRACKET, ["le", "ltp", "lsl"])
    assert [o.order_id for o in eng.open_orders()] == [resting.order_id, "le"]
    assert eng.get(resting.order_id) is resting and eng.get("ltp") is legs[0]
    assert eng.get("unknown") is None


def test_an_oco_stop_filling_on_entering_cancels_the_take_profit_before_it_works() -> None:
    eng = engine()
    eng.on_quote(Quote("AAPL", D("88.90"), D("89.10"), D(100), D(100), 2))
    eng.on_trade(Trade("AAPL", D(89), D(1), 3))  # already through the 90 stop
    parent, legs, events = enter_group(
        eng, OrderClass.OCO, ["xp", "xl"], side=Side.SELL, limit="110", now_ns=9
    )
    assert fills(events) == [("xl", D("88.90"), 9)]
    reason = "canceled because the other exit of its group filled"
    assert [e for e in events if isinstance(e, OrderClosed)] == [
        OrderClosed("xp", "acct", OrderStatus.CANCELED, reason, 9)
    ]
    assert (parent.status, parent.updated_ns, parent.reason) == (OrderStatus.CANCELED, 9, reason)
    assert len(eng) == 0 and len(eng.contingent) == 0 and legs[0].status is OrderStatus.FILLED


def test_an_ioc_fills_at_the_time_of_its_add() -> None:
    eng = engine()
    eng.on_quote(Quote("AAPL", D("99.90"), D("100.00"), D(100), D(100), 2))
    ioc = accepted(TimeInForce.IOC, limit="100")
    assert fills(eng.add(ioc, 7)) == [(ioc.order_id, D("100.00"), 7)]


def test_a_buy_stop_placed_beyond_the_last_trade_triggers_on_entering() -> None:
    eng = engine()
    eng.on_quote(Quote("AAPL", D("100.90"), D("101.00"), D(100), D(100), 2))
    eng.on_trade(Trade("AAPL", D(101), D(1), 3))
    request = OrderRequest(
        "AAPL", Side.BUY, OrderType.STOP, TimeInForce.DAY, qty=D(10), stop_price=D(100)
    )
    stop = new_order(request, AAPL, order_id="bst", account_id="acct", now_ns=1)
    stop.transition(OrderStatus.ACCEPTED, 1)
    events = eng.add(stop, 4)
    assert events[0] == OrderTriggered("bst", "acct", 4)
    assert fills(events) == [("bst", D("101.00"), 4)]


def test_equal_percent_trails_trigger_in_arrival_order() -> None:
    eng = engine()
    for oid in ("z-pct", "a-pct"):
        request = OrderRequest(
            "AAPL",
            Side.SELL,
            OrderType.TRAILING_STOP,
            TimeInForce.DAY,
            qty=D(1),
            trail_percent=D(2),
        )
        order = new_order(request, AAPL, order_id=oid, account_id="acct", now_ns=1)
        order.transition(OrderStatus.ACCEPTED, 1)
        eng.add(order, 1)
    eng.on_trade(Trade("AAPL", D(100), D(1), 6))
    events = eng.on_trade(Trade("AAPL", D(97), D(1), 7))
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == ["z-pct", "a-pct"]


def test_an_exit_released_into_a_market_through_it_fills_in_the_same_tick() -> None:
    eng = engine()
    enter_group(eng, OrderClass.BRACKET, ["re", "rtp", "rsl"])
    events = eng.on_quote(Quote("AAPL", D("110.00"), D("100.00"), D(100), D(100), 12))
    assert fills(events) == [("re", D("100.00"), 12), ("rtp", D("110.00"), 12)]
    assert closed(events) == [("rsl", OrderStatus.CANCELED, 12)]


def test_a_missed_close_expires_the_session_orders_placed_before_it_and_no_others() -> None:
    eng = engine()
    day, cls, gtc, extended, tonight = (
        accepted(tif, order_id=name)
        for tif, name in [
            (TimeInForce.DAY, "day"),
            (TimeInForce.CLS, "cls"),
            (TimeInForce.GTC, "gtc"),
            (TimeInForce.DAY, "extended"),
            (TimeInForce.DAY, "tonight"),
        ]
    )
    extended.extended_hours = True
    tonight.created_ns = 500  # placed after the close at 100
    for order in (day, cls, gtc, extended, tonight):
        eng.add(order, order.created_ns)
    assert closed(eng.expire_missed_close(100, 900, post_market_ended=False)) == [
        ("cls", OrderStatus.EXPIRED, 900),
        ("day", OrderStatus.EXPIRED, 900),
    ]
    assert {o.order_id for o in eng.open_orders()} == {"gtc", "extended", "tonight"}
    assert closed(eng.expire_missed_close(100, 950, post_market_ended=True)) == [
        ("extended", OrderStatus.EXPIRED, 950)
    ]
    assert {o.order_id for o in eng.open_orders()} == {"gtc", "tonight"}


def test_a_missed_close_expiring_an_oco_parent_cancels_its_other_exit() -> None:
    eng = engine()
    oco(eng, ["a", "b"])
    assert closed(eng.expire_missed_close(100, 900, post_market_ended=False)) == [
        ("a", OrderStatus.EXPIRED, 900),
        ("b", OrderStatus.CANCELED, 900),
    ]
    assert len(eng) == 0
