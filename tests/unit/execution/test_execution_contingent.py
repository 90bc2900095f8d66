"""Bracket, OCO and OTO legs in the fill engine, against scripted quote and trade sequences."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cift.trading.contingent import CancelLeg, ContingentOrders, ReleaseLeg
from cift.trading.fills import (
    EngineEvent,
    Fill,
    FillEngine,
    FillModel,
    LegReleased,
    OrderClosed,
    Quote,
    StopTrigger,
    Trade,
)
from cift.trading.ledger import Position, settle_fill
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
)
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
_ids = itertools.count(1)


def engine(*, displayed: bool = True, trigger: StopTrigger = StopTrigger.TRADE) -> FillEngine:
    built = FillEngine(FillModel(fill_at_displayed_size=displayed, stop_trigger=trigger))
    built.set_instrument(AAPL)
    return built


def group(
    eng: FillEngine,
    order_class: OrderClass = OrderClass.BRACKET,
    *,
    side: Side = Side.BUY,
    entry_type: OrderType = OrderType.LIMIT,
    qty: str = "10",
    limit: str | None = "100",
    take: str | None = "110",
    stop: StopLoss | None = None,
    with_stop: bool = True,
    tif: TimeInForce = TimeInForce.GTC,
) -> tuple[Order, list[Order], list[EngineEvent]]:
    request = OrderRequest(
        symbol="AAPL",
        side=side,
        order_type=entry_type,
        time_in_force=tif,
        qty=D(qty),
        limit_price=None if limit is None else D(limit),
    )
    classed = ClassedRequest(
        request,
        order_class,
        None if take is None else TakeProfit(D(take)),
        (StopLoss(stop_price=D(95)) if stop is None else stop) if with_stop else None,
    )
    plan = plan_group(classed, AAPL)
    n = next(_ids)
    ids = [f"g{n}-{i}" for i in range(1 + len(plan.legs))]
    parent, legs = new_group(
        plan, AAPL, order_ids=ids, leg_client_ids=ids[1:], account_id="acct", now_ns=1
    )
    accept_group(parent, legs, 1)
    return parent, legs, eng.add_group(parent, legs, 1)


def quote(eng: FillEngine, bid: str, ask: str, size: str = "100") -> list[EngineEvent]:
    return eng.on_quote(Quote("AAPL", D(bid), D(ask), D(size), D(size), 10))


def trade(eng: FillEngine, price: str, ts_ns: int = 10) -> list[EngineEvent]:
    return eng.on_trade(Trade("AAPL", D(price), D(100), ts_ns))


def fills(events: list[EngineEvent]) -> list[tuple[str, Decimal, Decimal]]:
    return [(e.order_id, e.qty, e.price) for e in events if isinstance(e, Fill)]


def closed(events: list[EngineEvent]) -> list[tuple[str, OrderStatus]]:
    return [(e.order_id, e.status) for e in events if isinstance(e, OrderClosed)]


def released(events: list[EngineEvent]) -> list[tuple[str, Decimal]]:
    return [(e.order_id, e.qty) for e in events if isinstance(e, LegReleased)]


def test_bracket_legs_wait_held_until_the_entry_fills() -> None:
    eng = engine()
    _parent, (take, stop), events = group(eng)
    assert events == [] and take.status is stop.status is OrderStatus.HELD
    assert quote(eng, "109", "112") == []  # the entry's limit is not reached
    assert take.status is OrderStatus.HELD


def test_partial_entry_fill_sizes_the_exits_to_what_filled_then_grows_them() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    events = quote(eng, "99", "100", size="4")
    assert fills(events) == [(parent.order_id, D(4), D(100))]
    assert released(events) == [(take.order_id, D(4)), (stop.order_id, D(4))]
    assert take.status is stop.status is OrderStatus.ACCEPTED
    events = quote(eng, "99", "100", size="6")
    assert released(events) == [(take.order_id, D(10)), (stop.order_id, D(10))]
    assert parent.status is OrderStatus.FILLED and take.qty == stop.qty == D(10)


def test_take_profit_fill_cancels_the_stop() -> None:
    eng = engine()
    _parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100")
    events = quote(eng, "110", "111")
    assert fills(events) == [(take.order_id, D(10), D(110))]
    assert closed(events) == [(stop.order_id, OrderStatus.CANCELED)]
    assert "exit" in stop.reason and take.order_id in stop.reason
    assert trade(eng, "90") == [] and len(eng) == 0


def test_stop_fill_cancels_the_take_profit() -> None:
    eng = engine()
    _parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100")
    events = trade(eng, "94.5")
    assert [f[0] for f in fills(events)] == [stop.order_id]
    assert closed(events) == [(take.order_id, OrderStatus.CANCELED)]


def test_one_tick_that_touches_both_exits_fills_exactly_one() -> None:
    eng = engine()
    _parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100")
    eng.on_quote(Quote("AAPL", D(0), D(0), D(0), D(0), 11))  # the quote goes away
    trade(eng, "94")  # the stop triggers, but finds no bid to sell to
    events = quote(eng, "111", "112")  # a bid above the take-profit as well
    assert fills(events) == [(stop.order_id, D(10), D(111))]
    assert closed(events) == [(take.order_id, OrderStatus.CANCELED)]
    assert take.filled_qty == 0


def test_exit_partial_fill_cancels_the_other_exit_and_the_entry_rest() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100", size="6")
    events = quote(eng, "110", "111", size="2")
    assert fills(events) == [(take.order_id, D(2), D(110))]
    assert sorted(closed(events)) == sorted(
        [(stop.order_id, OrderStatus.CANCELED), (parent.order_id, OrderStatus.CANCELED)]
    )
    assert parent.filled_qty == D(6)
    events = quote(eng, "110", "111", size="100")
    assert fills(events) == [(take.order_id, D(4), D(110))]  # the rest of what the entry bought
    assert take.status is OrderStatus.FILLED


def test_oco_legs_work_at_once_and_a_partial_fill_cancels_the_sibling() -> None:
    eng = engine()
    parent, (stop,), events = group(
        eng, OrderClass.OCO, side=Side.SELL, limit=None, take="110", tif=TimeInForce.DAY
    )
    assert events == [] and stop.status is OrderStatus.ACCEPTED
    events = quote(eng, "110.5", "111", size="3")
    assert fills(events) == [(parent.order_id, D(3), D("110.5"))]
    assert closed(events) == [(stop.order_id, OrderStatus.CANCELED)]
    assert fills(quote(eng, "110", "111", size="50")) == [(parent.order_id, D(7), D(110))]


def test_oco_whose_stop_fills_on_entering_never_works_the_take_profit() -> None:
    eng = engine()
    trade(eng, "90")
    quote(eng, "89.9", "90.1")
    parent, (stop,), events = group(
        eng, OrderClass.OCO, side=Side.SELL, limit=None, take="110", tif=TimeInForce.DAY
    )
    assert [f[0] for f in fills(events)] == [stop.order_id]
    assert closed(events) == [(parent.order_id, OrderStatus.CANCELED)]
    assert quote(eng, "111", "112") == []


def test_oto_releases_its_one_exit() -> None:
    eng = engine()
    _parent, (take,), _ = group(eng, OrderClass.OTO, with_stop=False)
    assert take.order_type is OrderType.LIMIT
    events = quote(eng, "99", "100")
    assert released(events) == [(take.order_id, D(10))]


def test_trailing_stop_leg_ratchets_from_where_it_was_released() -> None:
    eng = engine()
    _parent, (take, stop), _ = group(eng, stop=StopLoss(trail_price=D(2)))
    trade(eng, "100")
    quote(eng, "99", "100")
    for price in ("101", "104", "107", "106"):
        assert fills(trade(eng, price)) == []
    assert eng.water_mark(stop.order_id) == D(107)
    events = trade(eng, "105")
    assert fills(events) == [(stop.order_id, D(10), D(99))]
    assert closed(events) == [(take.order_id, OrderStatus.CANCELED)]


def test_parent_cancel_cancels_its_held_legs() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    removed = eng.remove(parent.order_id)
    assert removed is parent
    parent.transition(OrderStatus.CANCELED, 5, "canceled by request")
    events = eng.close_legs(parent, 5)
    assert closed(events) == [
        (take.order_id, OrderStatus.CANCELED),
        (stop.order_id, OrderStatus.CANCELED),
    ]
    assert len(eng) == 0 and take.order_id not in eng


def test_parent_cancel_after_a_partial_entry_fill_cancels_the_working_exits() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100", size="4")
    eng.remove(parent.order_id)
    parent.transition(OrderStatus.CANCELED, 5)
    assert sorted(closed(eng.close_legs(parent, 5))) == sorted(
        [(take.order_id, OrderStatus.CANCELED), (stop.order_id, OrderStatus.CANCELED)]
    )


def test_canceling_one_exit_leaves_the_other_working() -> None:
    eng = engine()
    _parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100")
    eng.remove(take.order_id)
    take.transition(OrderStatus.CANCELED, 5)
    assert eng.close_legs(take, 5) == []
    assert [f[0] for f in fills(trade(eng, "94"))] == [stop.order_id]


def test_entry_expiring_unfilled_cancels_the_legs_but_filled_part_keeps_its_exits() -> None:
    eng = engine()
    unfilled, legs, _ = group(eng, tif=TimeInForce.DAY)
    events = eng.close_session(20)
    assert (unfilled.order_id, OrderStatus.EXPIRED) in closed(events)
    assert {(leg.order_id, OrderStatus.CANCELED) for leg in legs} <= set(closed(events))

    eng = engine()
    partial, (_take, _stop), _ = group(eng)  # gtc exits
    _gtc_day, _, _ = group(eng, tif=TimeInForce.DAY, limit="99")
    quote(eng, "99", "100", size="4")
    assert partial.filled_qty == D(4)
    assert eng.contingent.on_close(partial.order_id, OrderStatus.EXPIRED, D(4)) == []


def test_replaced_leg_keeps_its_place_in_the_group() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100")
    successor = build_replacement(
        take, ReplaceRequest(limit_price=D(108)), AAPL, order_id="tp2", now_ns=6
    )
    assert (successor.parent_id, successor.order_class) == (parent.order_id, OrderClass.BRACKET)
    eng.remove(take.order_id)
    successor.transition(OrderStatus.ACCEPTED, 6)
    eng.replaced(take.order_id, successor, 6)
    events = quote(eng, "108", "109")
    assert fills(events) == [("tp2", D(10), D(108))]
    assert closed(events) == [(stop.order_id, OrderStatus.CANCELED)]


def test_cancel_that_loses_the_race_to_a_fill_finds_nothing_to_remove() -> None:
    eng = engine()
    _parent, (take, stop), _ = group(eng)
    quote(eng, "99", "100")
    quote(eng, "110", "111")
    assert eng.remove(take.order_id) is None and eng.remove(stop.order_id) is None


def test_contingent_rules_alone() -> None:
    rules = ContingentOrders()
    rules.register("e", OrderClass.BRACKET, ["tp", "sl"])
    assert rules.on_fill("e", D(3), completes=False) == [
        ReleaseLeg("tp", D(3)),
        ReleaseLeg("sl", D(3)),
    ]
    actions = rules.on_fill("sl", D(1), completes=False)
    assert [type(a) for a in actions] == [CancelLeg, CancelLeg]
    assert {a.order_id for a in actions} == {"tp", "e"}
    assert rules.on_fill("sl", D(2), completes=True) == []
    assert rules.max_exit_qty("tp", D(3)) == D(3) and rules.max_exit_qty("e", D(3)) is None


# ---- property: exits never fill more than the entry, and never both -----------------

prices = st.integers(min_value=9000, max_value=11000).map(lambda cents: D(cents) / 100)
ticks = st.lists(
    st.one_of(
        st.tuples(st.just("quote"), prices, st.integers(min_value=1, max_value=8)),
        st.tuples(st.just("trade"), prices, st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    ticks=ticks,
    trailing=st.booleans(),
    trigger=st.sampled_from(list(StopTrigger)),
)
def test_bracket_exits_never_exceed_the_entry_and_the_ledger_balances(
    ticks: list[tuple[str, Decimal, int]], trailing: bool, trigger: StopTrigger
) -> None:
    eng = engine(trigger=trigger)
    stop = StopLoss(trail_percent=D(1)) if trailing else StopLoss(stop_price=D(98))
    parent, (take, stop_leg), _ = group(eng, limit="100", take="102", stop=stop)
    position = Position("AAPL", D(0), D(0))
    cash = D(0)
    bought = sold = D(0)
    for n, (kind, price, size) in enumerate(ticks):
        if kind == "quote":
            events = eng.on_quote(
                Quote("AAPL", price, price + D("0.05"), D(size), D(size), 100 + n)
            )
        else:
            events = eng.on_trade(Trade("AAPL", price, D(100), 100 + n))
        for event in events:
            if isinstance(event, Fill):
                effect = settle_fill(position, event.side, event.qty, event.price)
                position, cash = effect.position, cash + effect.cash_delta
                if event.side is Side.BUY:
                    bought += event.qty * event.price
                else:
                    sold += event.qty * event.price
        exits_filled = take.filled_qty + stop_leg.filled_qty
        assert exits_filled <= parent.filled_qty
        assert take.filled_qty == 0 or stop_leg.filled_qty == 0
        assert position.qty == parent.filled_qty - exits_filled >= 0
        assert cash == sold - bought  # no commission in this model
        assert position.cost_basis >= 0


def test_forgetting_a_filled_entry_drops_its_released_exits_and_forgets_the_group() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    events = quote(eng, "99", "100")
    assert parent.status is OrderStatus.FILLED and take.order_id in eng
    dropped = eng.forget({e.order_id for e in events})
    assert dropped == {parent.order_id, take.order_id, stop.order_id}
    assert take.order_id not in eng and stop.order_id not in eng
    assert take.order_id not in eng.contingent and len(eng.contingent) == 0
    assert quote(eng, "120", "121") == []  # nothing left to fill or release


def test_forgetting_a_held_exit_drops_its_whole_group_so_it_comes_back_linked_as_one() -> None:
    eng = engine()
    parent, (take, stop), _ = group(eng)
    assert eng.forget([take.order_id]) == {parent.order_id, take.order_id, stop.order_id}
    assert parent.order_id not in eng and stop.order_id not in eng
    assert len(eng.contingent) == 0
    # Booked again as a restart would: linked, exits held, entry added.
    eng.link(parent.order_id, OrderClass.BRACKET, [take.order_id, stop.order_id])
    eng.hold(take)
    eng.hold(stop)
    assert eng.add(parent, 2) == []
    events = quote(eng, "99", "100")
    assert released(events) == [(take.order_id, D(10)), (stop.order_id, D(10))]


def test_forgetting_one_group_leaves_another_working() -> None:
    eng = engine()
    gone, _, _ = group(eng)
    kept, (kept_take, _), _ = group(eng, limit="99")
    assert eng.forget([gone.order_id, "never-booked"]) == {
        gone.order_id,
        "never-booked",
        *(f"{gone.order_id[:-2]}-{i}" for i in (1, 2)),
    }
    assert kept.order_id in eng and len(eng.contingent) == 1
    events = quote(eng, "98", "99")
    assert fills(events) == [(kept.order_id, D(10), D(99))]
    assert (kept_take.order_id, D(10)) in released(events)
