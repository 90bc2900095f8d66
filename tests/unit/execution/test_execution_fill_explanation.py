"""Each fill explains itself: the tick whose price it took and the model settings it used."""

from __future__ import annotations

from decimal import Decimal

from cift.trading.fills import (
    CommissionModel,
    EngineEvent,
    Fill,
    FillEngine,
    FillExplanation,
    FillModel,
    PriceSource,
    Quote,
    Trade,
)
from cift.trading.vocabulary import OrderType, Side, TimeInForce
from tests.unit.execution.test_execution_fills import engine, place

D = Decimal


def quote(
    eng: FillEngine, sequence: int, bid: str, ask: str, bid_size: str, ask_size: str
) -> list[EngineEvent]:
    return eng.on_quote(
        Quote("AAPL", D(bid), D(ask), D(bid_size), D(ask_size), 1000 + sequence, sequence)
    )


def only_fills(events: list[EngineEvent]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def explanation(fill: Fill) -> FillExplanation:
    assert fill.explanation is not None
    return fill.explanation


def test_market_buy_names_the_quote_and_takes_its_ask() -> None:
    eng = engine()
    quote(eng, 41, "99.98", "100.02", "300", "500")
    _, events = place(eng, Side.BUY, OrderType.MARKET)
    (fill,) = only_fills(events)
    assert fill.price == D("100.02")
    why = explanation(fill)
    assert (why.source, why.tick_sequence, why.tick_ts_ns) == (PriceSource.QUOTE, 41, 1041)
    assert (why.bid, why.ask, why.bid_size, why.ask_size) == (
        D("99.98"),
        D("100.02"),
        D(300),
        D(500),
    )
    assert (why.market_price, why.limit_price, why.available_qty) == (D("100.02"), None, None)
    # The default model: every share at once, no slippage, no commission.
    assert why.displayed_size_only is False
    assert (why.slippage_bps, why.commission_per_share, why.commission_bps) == (D(0),) * 3
    assert (why.trade_price, why.trade_size) == (None, None)


def test_market_sell_takes_the_bid_moved_by_the_slippage_and_rounded_down() -> None:
    eng = engine(FillModel(slippage_bps=D(15)))
    _, waiting = place(eng, Side.SELL, OrderType.MARKET)
    assert only_fills(waiting) == []
    (fill,) = only_fills(quote(eng, 7, "100.00", "100.04", "200", "200"))
    # 100.00 x (1 - 0.0015) = 99.85 exactly; a sell rounds down to the tick.
    assert fill.price == D("99.85")
    why = explanation(fill)
    assert (why.tick_sequence, why.market_price, why.slippage_bps) == (7, D("100.00"), D(15))
    assert (why.bid, why.bid_size, why.limit_price) == (D("100.00"), D(200), None)


def test_resting_limit_names_the_quote_that_reached_it_and_its_limit() -> None:
    eng = engine()
    quote(eng, 1, "99.90", "100.10", "100", "100")
    _, events = place(eng, Side.BUY, OrderType.LIMIT, limit_price="100.00")
    assert only_fills(events) == []
    quote(eng, 2, "99.92", "100.05", "100", "100")
    (fill,) = only_fills(quote(eng, 3, "99.95", "99.97", "100", "40"))
    assert fill.price == D("99.97")  # the better ask, not the limit
    why = explanation(fill)
    assert (why.tick_sequence, why.ask, why.ask_size) == (3, D("99.97"), D(40))
    assert (why.market_price, why.limit_price) == (D("99.97"), D("100.00"))


def test_limit_caps_a_price_pushed_past_it_by_slippage() -> None:
    eng = engine(FillModel(slippage_bps=D(50)))
    quote(eng, 5, "99.90", "100.00", "100", "100")
    _, events = place(eng, Side.BUY, OrderType.LIMIT, limit_price="100.20")
    (fill,) = only_fills(events)
    assert fill.price == D("100.20")  # 100.50 with slippage, capped by the limit
    assert (explanation(fill).market_price, explanation(fill).limit_price) == (
        D("100.00"),
        D("100.20"),
    )


def test_opening_auction_limit_names_the_trade_it_crossed_at() -> None:
    eng = engine()
    quote(eng, 10, "101.00", "101.10", "100", "100")
    _, events = place(eng, Side.BUY, OrderType.LIMIT, tif=TimeInForce.OPG, limit_price="101.50")
    assert events == []
    eng.open_session()
    (fill,) = only_fills(eng.on_trade(Trade("AAPL", D("101.25"), D(700), 5000, 11)))
    assert fill.price == D("101.25")
    why = explanation(fill)
    assert why.source is PriceSource.OPENING_AUCTION
    assert (why.tick_sequence, why.tick_ts_ns) == (11, 5000)
    assert (why.trade_price, why.trade_size, why.market_price) == (D("101.25"), D(700), D("101.25"))
    assert (why.limit_price, why.ask) == (D("101.50"), D("101.10"))  # the last quote, for reference


def test_closing_auction_names_the_sessions_last_trade() -> None:
    eng = engine()
    place(eng, Side.SELL, OrderType.MARKET, tif=TimeInForce.CLS)
    eng.on_trade(Trade("AAPL", D("98.00"), D(50), 6000, 20))
    eng.on_trade(Trade("AAPL", D("98.40"), D(80), 7000, 21))
    (fill,) = only_fills(eng.close_session(9000))
    why = explanation(fill)
    assert why.source is PriceSource.CLOSING_AUCTION
    assert (fill.price, why.tick_sequence, why.trade_size) == (D("98.40"), 21, D(80))


def test_partial_fills_by_displayed_size_name_the_size_left_on_each_quote() -> None:
    eng = engine(FillModel(fill_at_displayed_size=True))
    quote(eng, 1, "99.98", "100.02", "100", "5")
    _, first_events = place(eng, Side.BUY, OrderType.MARKET, qty="3")
    _, second_events = place(eng, Side.BUY, OrderType.MARKET, qty="10")
    (first,) = only_fills(first_events)
    (second,) = only_fills(second_events)
    assert (first.qty, explanation(first).available_qty) == (D(3), D(5))
    assert (second.qty, explanation(second).available_qty) == (D(2), D(2))
    assert explanation(second).displayed_size_only is True
    (rest,) = only_fills(quote(eng, 2, "99.99", "100.03", "100", "50"))
    why = explanation(rest)
    assert (rest.qty, rest.price, why.tick_sequence, why.available_qty) == (
        D(8),
        D("100.03"),
        2,
        D(50),
    )


def test_commission_settings_are_named_and_the_commission_follows_them() -> None:
    model = FillModel(commission=CommissionModel(per_share=D("0.005"), bps=D(2)))
    eng = engine(model)
    quote(eng, 3, "49.99", "50.01", "100", "100")
    _, events = place(eng, Side.BUY, OrderType.MARKET, qty="7")
    (fill,) = only_fills(events)
    why = explanation(fill)
    assert (why.commission_per_share, why.commission_bps) == (D("0.005"), D(2))
    # 7 x 0.005 + 7 x 50.01 x 2 / 10000 = 0.035 + 0.070014 = 0.105014 -> 0.11
    assert fill.commission == D("0.11")
    expected = (
        fill.qty * why.commission_per_share + fill.qty * fill.price * why.commission_bps / 10000
    )
    assert fill.commission == expected.quantize(D("0.01"))


def test_stop_armed_by_a_trade_fills_at_and_names_the_quote() -> None:
    eng = engine()
    quote(eng, 30, "94.90", "95.10", "100", "100")
    _, events = place(eng, Side.SELL, OrderType.STOP, stop_price="95.00")
    assert only_fills(events) == []
    (fill,) = only_fills(eng.on_trade(Trade("AAPL", D("94.95"), D(10), 2000, 31)))
    why = explanation(fill)
    assert (fill.price, why.source, why.tick_sequence) == (D("94.90"), PriceSource.QUOTE, 30)
    assert (why.bid, why.trade_price) == (D("94.90"), None)
