"""Session terms: opening and closing auctions, their cutoffs, GTD expiry, extended hours."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from cift.trading.auction import (
    CLOSING_CUTOFF_NS,
    MINUTE_NS,
    OPENING_CUTOFF_NS,
    SessionClock,
    auction_refusal,
    post_session_end_ns,
)
from cift.trading.fills import (
    EngineEvent,
    Fill,
    FillEngine,
    FillModel,
    OrderClosed,
    Quote,
    Trade,
)
from cift.trading.orders import Order, OrderRequest, OrderStatus, new_order
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

D = Decimal
AAPL = Instrument("AAPL", tick_size=D("0.01"), qty_increment=D(1), fractionable=False)
_ids = itertools.count(1)
OPEN_NS = 1_000 * MINUTE_NS
CLOSE_NS = OPEN_NS + 390 * MINUTE_NS


def engine() -> FillEngine:
    built = FillEngine()
    built.set_instrument(AAPL)
    return built


def place(
    eng: FillEngine,
    side: Side,
    tif: TimeInForce,
    limit: str | None = None,
    **fields: object,
) -> tuple[Order, list[EngineEvent]]:
    request = OrderRequest(
        symbol="AAPL",
        side=side,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        time_in_force=tif,
        qty=D(10),
        limit_price=None if limit is None else D(limit),
        **fields,  # type: ignore[arg-type]
    )
    order = new_order(request, AAPL, order_id=f"o{next(_ids)}", account_id="a", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    return order, eng.add(order, 1)


def fills(events: list[EngineEvent]) -> list[tuple[str, Decimal, Decimal]]:
    return [(e.order_id, e.qty, e.price) for e in events if isinstance(e, Fill)]


def closed(events: list[EngineEvent]) -> list[tuple[str, OrderStatus]]:
    return [(e.order_id, e.status) for e in events if isinstance(e, OrderClosed)]


def trade(eng: FillEngine, price: str) -> list[EngineEvent]:
    return eng.on_trade(Trade("AAPL", D(price), D(100), OPEN_NS + 1))


def test_opg_orders_ignore_quotes_and_cross_at_the_first_trade_after_the_open() -> None:
    eng = engine()
    market, _ = place(eng, Side.BUY, TimeInForce.OPG)
    cheap, _ = place(eng, Side.BUY, TimeInForce.OPG, limit="99")
    generous, _ = place(eng, Side.SELL, TimeInForce.OPG, limit="99")
    assert eng.on_quote(Quote("AAPL", D(100), D("100.1"), D(1), D(1), 5)) == []
    assert trade(eng, "98") == []  # before the open: no auction yet
    eng.open_session()
    events = trade(eng, "100")
    assert fills(events) == [
        (market.order_id, D(10), D(100)),
        (generous.order_id, D(10), D(100)),
    ]
    assert closed(events) == [(cheap.order_id, OrderStatus.EXPIRED)]
    assert "did not cross in the opening auction at 100" in cheap.reason
    assert trade(eng, "50") == [] and len(eng) == 0


def test_cls_orders_cross_at_the_sessions_last_trade_when_it_closes() -> None:
    eng = engine()
    market, _ = place(eng, Side.SELL, TimeInForce.CLS)
    limit, _ = place(eng, Side.BUY, TimeInForce.CLS, limit="101")
    eng.on_quote(Quote("AAPL", D(90), D(91), D(100), D(100), 5))
    for price in ("100", "103", "100.5"):
        assert trade(eng, price) == []
    events = eng.close_session(CLOSE_NS)
    assert fills(events) == [
        (market.order_id, D(10), D("100.5")),
        (limit.order_id, D(10), D("100.5")),
    ]


def test_cls_without_a_trade_and_opg_without_an_opening_print_expire_at_the_close() -> None:
    eng = engine()
    cls, _ = place(eng, Side.SELL, TimeInForce.CLS)
    opg, _ = place(eng, Side.BUY, TimeInForce.OPG)
    events = eng.close_session(CLOSE_NS)
    assert sorted(closed(events)) == sorted(
        [(cls.order_id, OrderStatus.EXPIRED), (opg.order_id, OrderStatus.EXPIRED)]
    )


def test_auction_orders_can_be_canceled_before_their_auction() -> None:
    eng = engine()
    order, _ = place(eng, Side.BUY, TimeInForce.OPG)
    assert eng.remove(order.order_id) is order
    eng.open_session()
    assert trade(eng, "100") == []


def clock(now_ns: int, is_open: bool) -> SessionClock:
    next_open = OPEN_NS if now_ns < OPEN_NS else OPEN_NS + 1440 * MINUTE_NS
    return SessionClock(now_ns, is_open, next_open, CLOSE_NS)


def test_opg_is_accepted_while_closed_until_the_cutoff() -> None:
    assert auction_refusal(TimeInForce.OPG, clock(OPEN_NS - 60 * MINUTE_NS, False)) is None
    late = auction_refusal(TimeInForce.OPG, clock(OPEN_NS - OPENING_CUTOFF_NS, False))
    assert late is not None and "cutoff has passed" in late
    during = auction_refusal(TimeInForce.OPG, clock(OPEN_NS + MINUTE_NS, True))
    assert during is not None and "opening auction has passed" in during


def test_cls_is_accepted_until_ten_minutes_before_the_close() -> None:
    assert auction_refusal(TimeInForce.CLS, clock(CLOSE_NS - 11 * MINUTE_NS, True)) is None
    late = auction_refusal(TimeInForce.CLS, clock(CLOSE_NS - CLOSING_CUTOFF_NS, True))
    assert late is not None and "10 minutes before the close" in late
    assert auction_refusal(TimeInForce.CLS, clock(OPEN_NS - MINUTE_NS, False)) is None


@pytest.mark.parametrize("tif", [TimeInForce.OPG, TimeInForce.CLS])
def test_an_always_open_clock_has_no_auctions(tif: TimeInForce) -> None:
    refusal = auction_refusal(tif, SessionClock(5, True, None, None))
    assert refusal is not None and "calendar" in refusal


def test_day_and_gtc_need_no_auction_check() -> None:
    assert auction_refusal(TimeInForce.DAY, SessionClock(5, True, None, None)) is None


def test_gtd_orders_expire_at_their_date_and_not_before() -> None:
    eng = engine()
    order, _ = place(eng, Side.BUY, TimeInForce.GTD, limit="90", expire_ns=5_000)
    other, _ = place(eng, Side.BUY, TimeInForce.GTD, limit="90", expire_ns=9_000)
    assert eng.expire_due(4_999) == []
    events = eng.expire_due(5_000)
    assert closed(events) == [(order.order_id, OrderStatus.EXPIRED)]
    assert "expire_at" in order.reason and other.order_id in eng


def test_gtd_order_filled_before_its_date_is_not_expired_later() -> None:
    eng = engine()
    order, _ = place(eng, Side.BUY, TimeInForce.GTD, limit="101", expire_ns=5_000)
    eng.on_quote(Quote("AAPL", D(99), D(100), D(100), D(100), 2))
    assert order.status is OrderStatus.FILLED
    assert eng.expire_due(6_000) == []


def test_extended_hours_day_orders_outlive_the_regular_close_until_the_post_session() -> None:
    eng = engine()
    extended, _ = place(eng, Side.BUY, TimeInForce.DAY, limit="90", extended_hours=True)
    regular, _ = place(eng, Side.BUY, TimeInForce.DAY, limit="90")
    assert closed(eng.close_session(CLOSE_NS)) == [(regular.order_id, OrderStatus.EXPIRED)]
    assert extended.is_open
    events = eng.close_session(post_session_end_ns(CLOSE_NS), post_market=True)
    assert closed(events) == [(extended.order_id, OrderStatus.EXPIRED)]
    assert post_session_end_ns(CLOSE_NS) - CLOSE_NS == 240 * MINUTE_NS


def test_a_simple_order_with_session_terms_enters_through_group_entry_alone() -> None:
    # Order entry books every order with session terms through add_group (no legs).
    eng = engine()
    request = OrderRequest(
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        qty=D(10),
        limit_price=D("100.05"),
        extended_hours=True,
    )
    order = new_order(request, AAPL, order_id="simple", account_id="a", now_ns=1)
    order.transition(OrderStatus.ACCEPTED, 1)
    assert eng.add_group(order, [], 1) == []
    assert eng.contingent.group_of("simple") is None
    events = eng.on_quote(Quote("AAPL", D("100.00"), D("100.05"), D(500), D(500), 2))
    assert fills(events) == [("simple", D(10), D("100.05"))]


@pytest.mark.parametrize(("side", "shown_at"), [(Side.BUY, "100.1"), (Side.SELL, "100")])
def test_an_auction_cross_leaves_the_displayed_quote_size_to_continuous_orders(
    side: Side, shown_at: str
) -> None:
    eng = FillEngine(FillModel(fill_at_displayed_size=True))
    eng.set_instrument(AAPL)
    assert eng.on_quote(Quote("AAPL", D(100), D("100.1"), D(10), D(10), 5)) == []
    auction, _ = place(eng, side, TimeInForce.OPG)
    eng.open_session()
    assert fills(trade(eng, "100.05")) == [(auction.order_id, D(10), D("100.05"))]
    # The auction printed at the trade; the 10 shown on the quote are still there.
    market, events = place(eng, side, TimeInForce.DAY)
    assert fills(events) == [(market.order_id, D(10), D(shown_at))]


def test_a_limit_exactly_at_the_auction_price_crosses_on_either_side() -> None:
    eng = engine()
    buy, _ = place(eng, Side.BUY, TimeInForce.CLS, limit="100.5")
    sell, _ = place(eng, Side.SELL, TimeInForce.CLS, limit="100.5")
    trade(eng, "100.5")
    assert fills(eng.close_session(CLOSE_NS)) == [
        (buy.order_id, D(10), D("100.5")),
        (sell.order_id, D(10), D("100.5")),
    ]


def test_opg_needs_a_next_open_even_when_a_close_is_known() -> None:
    refusal = auction_refusal(TimeInForce.OPG, SessionClock(OPEN_NS, False, None, CLOSE_NS))
    assert refusal is not None and "never opens" in refusal
