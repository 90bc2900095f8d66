"""Each pre-trade rule on its own: what passes, what fails, and what the trader is told."""

from __future__ import annotations

from decimal import Decimal

from cift.trading.pretrade import rules
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.rules import Reason
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce
from tests.unit.risk.risk_builders import D, ctx, limits, order, quote, snapshot


def reasons(found: list[rules.Violation]) -> list[Reason]:
    return [v.reason for v in found]


# --- trading state -------------------------------------------------------------------


def test_active_account_passes_trading_state() -> None:
    assert rules.check_trading_state(ctx()) == []


def test_kill_switch_rejects_even_a_reducing_order() -> None:
    snap = snapshot(venue_state=TradingState.HALTED, position_qty=D(-50))
    found = rules.check_trading_state(ctx(order(side=Side.BUY, qty=D(10)), snap))
    assert reasons(found) == [Reason.KILL_SWITCH]
    assert "kill switch" in found[0].message


def test_halted_account_rejects_everything() -> None:
    snap = snapshot(account_state=TradingState.HALTED, position_qty=D(100))
    found = rules.check_trading_state(ctx(order(side=Side.SELL, qty=D(10)), snap))
    assert reasons(found) == [Reason.ACCOUNT_HALTED]


def test_reducing_account_lets_a_sell_of_a_long_through() -> None:
    snap = snapshot(account_state=TradingState.REDUCING, position_qty=D(100))
    assert rules.check_trading_state(ctx(order(side=Side.SELL, qty=D(100)), snap)) == []


def test_reducing_account_refuses_a_buy_that_adds_to_a_long() -> None:
    snap = snapshot(account_state=TradingState.REDUCING, position_qty=D(100))
    found = rules.check_trading_state(ctx(order(side=Side.BUY, qty=D(1)), snap))
    assert reasons(found) == [Reason.ACCOUNT_REDUCING_ONLY]
    assert "AAPL" in found[0].message


def test_reducing_account_refuses_an_order_on_a_flat_position() -> None:
    snap = snapshot(account_state=TradingState.REDUCING)
    found = rules.check_trading_state(ctx(order(side=Side.SELL, qty=D(1)), snap))
    assert reasons(found) == [Reason.ACCOUNT_REDUCING_ONLY]


def test_reducing_account_refuses_a_sell_that_flips_the_long_short() -> None:
    snap = snapshot(account_state=TradingState.REDUCING, position_qty=D(100))
    found = rules.check_trading_state(ctx(order(side=Side.SELL, qty=D(101)), snap))
    assert reasons(found) == [Reason.ACCOUNT_REDUCING_ONLY]


def test_reducing_counts_resting_sells_that_may_fill_first() -> None:
    snap = snapshot(account_state=TradingState.REDUCING, position_qty=D(100), open_sell_qty=D(80))
    assert reasons(rules.check_trading_state(ctx(order(side=Side.SELL, qty=D(30)), snap))) == [
        Reason.ACCOUNT_REDUCING_ONLY
    ]
    assert rules.check_trading_state(ctx(order(side=Side.SELL, qty=D(20)), snap)) == []


def test_reducing_account_lets_a_buy_cover_a_short() -> None:
    snap = snapshot(account_state=TradingState.REDUCING, position_qty=D(-40))
    assert rules.check_trading_state(ctx(order(side=Side.BUY, qty=D(40)), snap)) == []


def test_global_reducing_mode_applies_to_every_account() -> None:
    snap = snapshot(venue_state=TradingState.REDUCING)
    found = rules.check_trading_state(ctx(order(), snap))
    assert reasons(found) == [Reason.GLOBAL_REDUCING_ONLY]


# --- instrument ----------------------------------------------------------------------


def test_unknown_symbol_is_rejected() -> None:
    found = rules.check_instrument(ctx(order(symbol="ZZZZ"), snapshot(instrument=None)))
    assert reasons(found) == [Reason.UNKNOWN_INSTRUMENT]
    assert "'ZZZZ'" in found[0].message


def test_untradable_and_halted_instrument_report_both() -> None:
    halted = Instrument(symbol="AAPL", tick_size=D("0.01"), tradable=False, halted=True)
    found = rules.check_instrument(ctx(snap=snapshot(instrument=halted)))
    assert reasons(found) == [Reason.INSTRUMENT_NOT_TRADABLE, Reason.INSTRUMENT_HALTED]


def test_short_sale_of_a_hard_to_borrow_stock_is_rejected() -> None:
    htb = Instrument(symbol="AAPL", tick_size=D("0.01"), shortable=False)
    found = rules.check_shortable(ctx(order(side=Side.SELL, qty=D(5)), snapshot(instrument=htb)))
    assert reasons(found) == [Reason.NOT_SHORTABLE]


def test_selling_shares_held_needs_no_borrow() -> None:
    htb = Instrument(symbol="AAPL", tick_size=D("0.01"), shortable=False)
    snap = snapshot(instrument=htb, position_qty=D(5))
    assert rules.check_shortable(ctx(order(side=Side.SELL, qty=D(5)), snap)) == []


def test_selling_shares_already_promised_to_another_sell_is_a_short_sale() -> None:
    htb = Instrument(symbol="AAPL", tick_size=D("0.01"), shortable=False)
    snap = snapshot(instrument=htb, position_qty=D(5), open_sell_qty=D(5))
    assert reasons(rules.check_shortable(ctx(order(side=Side.SELL, qty=D(1)), snap))) == [
        Reason.NOT_SHORTABLE
    ]


def test_account_without_short_permission_cannot_open_a_short() -> None:
    snap = snapshot(limits=limits(allow_short=False), position_qty=D(3))
    found = rules.check_shortable(ctx(order(side=Side.SELL, qty=D(5)), snap))
    assert reasons(found) == [Reason.SHORT_NOT_ALLOWED]
    assert rules.check_shortable(ctx(order(side=Side.SELL, qty=D(3)), snap)) == []


# --- shape ---------------------------------------------------------------------------


def test_quantity_or_notional_is_required() -> None:
    assert reasons(rules.check_quantity(ctx(order(qty=None)))) == [Reason.QUANTITY_REQUIRED]


def test_quantity_and_notional_together_are_refused() -> None:
    found = rules.check_quantity(ctx(order(notional=D(100))))
    assert reasons(found) == [Reason.NOTIONAL_NOT_ALLOWED]


def test_zero_and_negative_quantities_are_refused() -> None:
    for bad in (D(0), D(-5)):
        assert reasons(rules.check_quantity(ctx(order(qty=bad)))) == [Reason.NON_POSITIVE_QUANTITY]
    found = rules.check_quantity(ctx(order(qty=None, notional=D(0), order_type=OrderType.MARKET)))
    assert reasons(found) == [Reason.NON_POSITIVE_QUANTITY]


def test_whole_share_instrument_refuses_fractions() -> None:
    whole = Instrument(symbol="AAPL", tick_size=D("0.01"), fractionable=False)
    found = rules.check_lot_size(ctx(order(qty=D("1.5")), snapshot(instrument=whole)))
    assert reasons(found) == [Reason.LOT_SIZE]
    assert "whole shares" in found[0].message


def test_round_lot_instrument_needs_multiples_of_the_lot() -> None:
    lots = Instrument(symbol="AAPL", tick_size=D("0.01"), lot_size=D(100))
    assert rules.check_lot_size(ctx(order(qty=D(300)), snapshot(instrument=lots))) == []
    assert reasons(rules.check_lot_size(ctx(order(qty=D(250)), snapshot(instrument=lots)))) == [
        Reason.LOT_SIZE
    ]


def test_fractionable_instrument_takes_nine_decimals_not_ten() -> None:
    assert rules.check_lot_size(ctx(order(qty=D("0.123456789")))) == []
    assert reasons(rules.check_lot_size(ctx(order(qty=D("0.1234567891"))))) == [Reason.LOT_SIZE]


def test_limit_order_without_limit_price_is_missing_a_price() -> None:
    found = rules.check_prices(ctx(order(limit_price=None)))
    assert reasons(found) == [Reason.MISSING_PRICE]
    assert "limit_price" in found[0].message


def test_stop_limit_needs_both_prices() -> None:
    found = rules.check_prices(ctx(order(order_type=OrderType.STOP_LIMIT, limit_price=None)))
    assert reasons(found) == [Reason.MISSING_PRICE, Reason.MISSING_PRICE]


def test_market_order_with_a_limit_price_is_refused() -> None:
    found = rules.check_prices(ctx(order(order_type=OrderType.MARKET)))
    assert reasons(found) == [Reason.PRICE_NOT_ALLOWED]


def test_negative_limit_price_is_refused() -> None:
    assert reasons(rules.check_prices(ctx(order(limit_price=D("-1"))))) == [
        Reason.NON_POSITIVE_PRICE
    ]


def test_trailing_stop_needs_exactly_one_trail() -> None:
    trailing = order(order_type=OrderType.TRAILING_STOP, limit_price=None)
    assert reasons(rules.check_prices(ctx(trailing))) == [Reason.MISSING_PRICE]
    both = order(
        order_type=OrderType.TRAILING_STOP, limit_price=None, trail_price=D(1), trail_percent=D(1)
    )
    assert reasons(rules.check_prices(ctx(both))) == [Reason.MISSING_PRICE]
    ok = order(order_type=OrderType.TRAILING_STOP, limit_price=None, trail_percent=D("2.5"))
    assert rules.check_prices(ctx(ok)) == []
    absurd = order(order_type=OrderType.TRAILING_STOP, limit_price=None, trail_percent=D(100))
    assert reasons(rules.check_prices(ctx(absurd))) == [Reason.NON_POSITIVE_PRICE]


def test_trail_on_a_limit_order_is_refused() -> None:
    assert reasons(rules.check_prices(ctx(order(trail_price=D(1))))) == [Reason.PRICE_NOT_ALLOWED]


def test_prices_must_sit_on_the_tick_grid() -> None:
    assert rules.check_tick_grid(ctx(order(limit_price=D("100.01")))) == []
    found = rules.check_tick_grid(ctx(order(limit_price=D("100.005"))))
    assert reasons(found) == [Reason.OFF_TICK_GRID]
    assert "0.01" in found[0].message


def test_stop_and_trail_prices_are_on_the_grid_too() -> None:
    stop = order(order_type=OrderType.STOP_LIMIT, stop_price=D("99.999"))
    assert reasons(rules.check_tick_grid(ctx(stop))) == [Reason.OFF_TICK_GRID]
    trail = order(order_type=OrderType.TRAILING_STOP, limit_price=None, trail_price=D("0.015"))
    assert reasons(rules.check_tick_grid(ctx(trail))) == [Reason.OFF_TICK_GRID]


# --- notional orders -----------------------------------------------------------------


def notional_order(**changes: object) -> OrderToCheck:
    base = {"order_type": OrderType.MARKET, "qty": None, "notional": D(1000), "limit_price": None}
    return order(**{**base, **changes})


def test_notional_market_day_order_on_fractionable_stock_is_allowed() -> None:
    assert rules.check_notional_allowed(ctx(notional_order())) == []


def test_notional_limit_order_is_refused() -> None:
    found = rules.check_notional_allowed(
        ctx(notional_order(order_type=OrderType.LIMIT, limit_price=D(100)))
    )
    assert reasons(found) == [Reason.NOTIONAL_NOT_ALLOWED]
    assert "Only market orders" in found[0].message


def test_notional_gtc_order_on_whole_share_stock_lists_both_problems() -> None:
    whole = Instrument(symbol="AAPL", tick_size=D("0.01"), fractionable=False)
    found = rules.check_notional_allowed(
        ctx(notional_order(time_in_force=TimeInForce.GTC), snapshot(instrument=whole))
    )
    assert reasons(found) == [Reason.NOTIONAL_NOT_ALLOWED]
    assert "day orders" in found[0].message and "fractional" in found[0].message


def test_notional_orders_can_be_disabled_per_account() -> None:
    snap = snapshot(limits=limits(allow_notional_orders=False))
    assert reasons(rules.check_notional_allowed(ctx(notional_order(), snap))) == [
        Reason.NOTIONAL_NOT_ALLOWED
    ]


def test_notional_order_size_is_priced_at_the_ask() -> None:
    c = ctx(notional_order(notional=D("1000.10")))
    assert c.price == D("100.01")
    assert c.qty == D(10)


# --- collar and quote freshness ------------------------------------------------------


def test_limit_within_ten_percent_of_mid_passes_the_collar() -> None:
    assert rules.check_price_collar(ctx(order(limit_price=D("110.00")))) == []
    assert rules.check_price_collar(ctx(order(limit_price=D("90.00")))) == []


def test_fat_finger_limit_price_is_caught_by_the_collar() -> None:
    found = rules.check_price_collar(ctx(order(limit_price=D("110.01"))))
    assert reasons(found) == [Reason.PRICE_COLLAR]
    assert "10%" in found[0].message and "100" in found[0].message
    assert reasons(rules.check_price_collar(ctx(order(limit_price=D("89.99"))))) == [
        Reason.PRICE_COLLAR
    ]


def test_collar_width_is_configurable() -> None:
    snap = snapshot(limits=limits(price_collar_pct=D(2)))
    assert reasons(rules.check_price_collar(ctx(order(limit_price=D("102.01")), snap))) == [
        Reason.PRICE_COLLAR
    ]


def test_stop_price_is_collared_too() -> None:
    stop = order(order_type=OrderType.STOP, limit_price=None, stop_price=D("150.00"))
    assert reasons(rules.check_price_collar(ctx(stop))) == [Reason.PRICE_COLLAR]


def test_collar_uses_last_trade_when_the_book_is_one_sided() -> None:
    snap = snapshot(quote=quote(bid="0", ask="0", last="50.00"))
    assert reasons(rules.check_price_collar(ctx(order(limit_price=D("100.00")), snap))) == [
        Reason.PRICE_COLLAR
    ]


def test_limit_order_without_a_quote_is_not_collared() -> None:
    assert rules.check_price_collar(ctx(order(limit_price=D("500.00")), snapshot(quote=None))) == []


def test_market_order_with_a_fresh_quote_passes() -> None:
    assert rules.check_fresh_quote(ctx(order(order_type=OrderType.MARKET, limit_price=None))) == []


def test_market_order_with_a_stale_quote_is_rejected() -> None:
    snap = snapshot(quote=quote(age_s=11))
    found = rules.check_fresh_quote(ctx(order(order_type=OrderType.MARKET, limit_price=None), snap))
    assert reasons(found) == [Reason.NO_FRESH_QUOTE]
    assert "use a limit order" in found[0].message


def test_market_order_with_no_quote_at_all_is_rejected() -> None:
    snap = snapshot(quote=None)
    found = rules.check_fresh_quote(ctx(order(order_type=OrderType.MARKET, limit_price=None), snap))
    assert reasons(found) == [Reason.NO_FRESH_QUOTE]


def test_limit_order_needs_no_quote() -> None:
    assert rules.check_fresh_quote(ctx(order(), snapshot(quote=None))) == []


# --- size ----------------------------------------------------------------------------


def test_order_over_max_quantity_is_rejected() -> None:
    snap = snapshot(limits=limits(max_order_qty=D(5)))
    found = rules.check_order_size(ctx(order(qty=D(6)), snap))
    assert reasons(found) == [Reason.MAX_ORDER_QTY]
    assert rules.check_order_size(ctx(order(qty=D(5)), snap)) == []


def test_order_over_max_notional_is_rejected_with_dollar_amounts() -> None:
    snap = snapshot(limits=limits(max_order_notional=D(999)))
    found = rules.check_order_size(ctx(order(qty=D(10)), snap))
    assert reasons(found) == [Reason.MAX_ORDER_NOTIONAL]
    assert "$1,000.00" in found[0].message and "$999.00" in found[0].message


def test_position_limit_counts_the_held_position_and_resting_buys() -> None:
    snap = snapshot(limits=limits(max_position_qty=D(100)), position_qty=D(60), open_buy_qty=D(30))
    assert rules.check_position_limits(ctx(order(qty=D(10)), snap)) == []
    found = rules.check_position_limits(ctx(order(qty=D(11)), snap))
    assert reasons(found) == [Reason.MAX_POSITION_QTY]
    assert "101 shares" in found[0].message


def test_short_position_limit_applies_to_sells() -> None:
    snap = snapshot(limits=limits(max_position_qty=D(100)), position_qty=D(-95))
    found = rules.check_position_limits(ctx(order(side=Side.SELL, qty=D(10)), snap))
    assert reasons(found) == [Reason.MAX_POSITION_QTY]


def test_order_that_shrinks_an_oversized_position_passes() -> None:
    snap = snapshot(limits=limits(max_position_qty=D(100)), position_qty=D(500))
    assert rules.check_position_limits(ctx(order(side=Side.SELL, qty=D(10)), snap)) == []


def test_position_notional_limit() -> None:
    snap = snapshot(limits=limits(max_position_notional=D(5000)), position_qty=D(45))
    found = rules.check_position_limits(ctx(order(qty=D(6)), snap))
    assert reasons(found) == [Reason.MAX_POSITION_NOTIONAL]


def test_gross_exposure_limit_counts_other_positions() -> None:
    snap = snapshot(limits=limits(max_gross_exposure=D(10_000)), gross_exposure=D(9_500))
    assert reasons(rules.check_gross_exposure(ctx(order(qty=D(6)), snap))) == [
        Reason.MAX_GROSS_EXPOSURE
    ]
    assert rules.check_gross_exposure(ctx(order(qty=D(5)), snap)) == []


def test_closing_trade_passes_gross_exposure_even_when_over() -> None:
    snap = snapshot(
        limits=limits(max_gross_exposure=D(100)), gross_exposure=D(5_000), position_qty=D(50)
    )
    assert rules.check_gross_exposure(ctx(order(side=Side.SELL, qty=D(50)), snap)) == []


def test_open_order_count_limit() -> None:
    snap = snapshot(limits=limits(max_open_orders=3), open_order_count=3)
    found = rules.check_open_orders(ctx(snap=snap))
    assert reasons(found) == [Reason.MAX_OPEN_ORDERS]
    assert (
        rules.check_open_orders(
            ctx(snap=snapshot(limits=limits(max_open_orders=3), open_order_count=2))
        )
        == []
    )


# --- buying power and rate -----------------------------------------------------------


def test_buy_needs_its_notional_in_buying_power() -> None:
    assert rules.check_buying_power(ctx(order(qty=D(10)), snapshot(buying_power=D(1000)))) == []
    found = rules.check_buying_power(ctx(order(qty=D(10)), snapshot(buying_power=D("999.99"))))
    assert reasons(found) == [Reason.INSUFFICIENT_BUYING_POWER]
    assert "$1,000.00" in found[0].message and "$999.99" in found[0].message


def test_market_buy_is_costed_at_the_ask() -> None:
    market = order(order_type=OrderType.MARKET, limit_price=None, qty=D(10))
    found = rules.check_buying_power(ctx(market, snapshot(buying_power=D(1000))))
    assert reasons(found) == [Reason.INSUFFICIENT_BUYING_POWER]


def test_selling_a_held_long_needs_no_buying_power() -> None:
    snap = snapshot(buying_power=D(0), position_qty=D(10))
    assert rules.check_buying_power(ctx(order(side=Side.SELL, qty=D(10)), snap)) == []


def test_short_sale_needs_buying_power_for_the_short_part_only() -> None:
    snap = snapshot(buying_power=D(500), position_qty=D(5))
    c = ctx(order(side=Side.SELL, qty=D(10)), snap)
    assert c.order_cost == D(500)
    assert rules.check_buying_power(c) == []
    assert reasons(rules.check_buying_power(ctx(order(side=Side.SELL, qty=D(11)), snap))) == [
        Reason.INSUFFICIENT_BUYING_POWER
    ]


def test_cost_sent_by_the_caller_is_the_cost_checked() -> None:
    snap = snapshot(buying_power=D(1500), caller_order_cost=D(2000))
    c = ctx(order(qty=D(10)), snap)
    assert c.order_cost == D(2000)
    assert reasons(rules.check_buying_power(c)) == [Reason.INSUFFICIENT_BUYING_POWER]


def test_negative_buying_power_is_shown_as_none_available() -> None:
    found = rules.check_buying_power(ctx(snap=snapshot(buying_power=D(-5))))
    assert "$0.00 is available" in found[0].message


def test_rate_limited_order_says_when_to_retry() -> None:
    snap = snapshot(rate=RateDecision(False, retry_after_us=12_300))
    found = rules.check_rate(ctx(snap=snap))
    assert reasons(found) == [Reason.RATE_LIMITED]
    assert "retry in 13 ms" in found[0].message


def test_allowed_rate_passes() -> None:
    assert rules.check_rate(ctx(snap=snapshot(rate=RateDecision(True)))) == []
    assert rules.check_rate(ctx(snap=snapshot(rate=None))) == []


def test_every_reason_has_its_own_code() -> None:
    assert len({r.value for r in Reason}) == len(Reason)
    assert all(r.value == r.name for r in Reason)


def test_decimal_estimates_are_exact() -> None:
    c = ctx(order(qty=D("3"), limit_price=D("0.10")))
    assert c.notional == Decimal("0.30")
