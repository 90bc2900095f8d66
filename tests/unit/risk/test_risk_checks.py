"""A whole check: every rule applied, all violations reported together."""

from __future__ import annotations

from cift.trading.pretrade.checks import check_order
from cift.trading.pretrade.rules import Reason
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import Instrument, OrderType
from tests.unit.risk.risk_builders import D, limits, order, snapshot


def test_sane_limit_buy_is_approved_with_its_cost() -> None:
    result = check_order(order(qty=D(10), limit_price=D("100.00")), snapshot())
    assert result.approved
    assert result.expected_price == D("100.00")
    assert result.order_cost == D("1000.00")


def test_the_result_carries_the_expected_notional_of_a_qty_or_a_dollar_order() -> None:
    by_qty = check_order(order(qty=D(3), limit_price=D("50.00")), snapshot())
    assert (by_qty.expected_price, by_qty.expected_notional) == (D("50.00"), D("150.00"))
    by_dollars = check_order(order(qty=None, notional=D("250.00")), snapshot())
    assert by_dollars.expected_notional == D("250.00")


def test_rejected_order_lists_every_broken_rule() -> None:
    whole_shares = Instrument(symbol="AAPL", tick_size=D("0.01"), fractionable=False)
    bad = order(qty=D("1.5"), limit_price=D("150.005"))
    snap = snapshot(account_state=TradingState.HALTED, buying_power=D(10), instrument=whole_shares)
    result = check_order(bad, snap)
    assert result.reasons == (
        Reason.ACCOUNT_HALTED,
        Reason.LOT_SIZE,
        Reason.OFF_TICK_GRID,
        Reason.PRICE_COLLAR,
        Reason.INSUFFICIENT_BUYING_POWER,
    )
    assert not result.approved


def test_rate_limited_order_is_flagged_as_such() -> None:
    result = check_order(order(), snapshot(rate=RateDecision(False, 1000)))
    assert result.rate_limited
    assert result.reasons == (Reason.RATE_LIMITED,)


def test_unknown_instrument_skips_the_rules_that_need_it() -> None:
    result = check_order(order(symbol="NOPE"), snapshot(instrument=None, quote=None))
    assert result.reasons == (Reason.UNKNOWN_INSTRUMENT,)


def test_market_order_without_quote_is_rejected_once_not_per_size_rule() -> None:
    market = order(order_type=OrderType.MARKET, limit_price=None)
    result = check_order(market, snapshot(quote=None, limits=limits(max_order_notional=D(1))))
    assert result.reasons == (Reason.NO_FRESH_QUOTE,)
