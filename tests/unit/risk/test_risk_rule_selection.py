"""The shorter rule list a repeat checker uses gives every order the verdict all the rules give."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cift.trading.pretrade.checks import (
    check_order,
    is_plain_market,
    rules_for_plain_market,
    rules_that_can_refuse,
)
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.rules import (
    ALL_RULES,
    check_buying_power,
    check_instrument,
    check_notional_allowed,
    check_order_size,
    check_price_collar,
    check_prices,
    check_rate,
    check_shortable,
    check_tick_grid,
    check_trading_state,
)
from cift.trading.pretrade.snapshot import CheckSnapshot
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import OrderType, Side, TimeInForce
from tests.unit.risk.risk_builders import AAPL, snapshot
from tests.unit.risk.test_risk_properties import orders, snapshots_of_any_account

STATES = st.sampled_from(list(TradingState))
RATES = st.sampled_from([None, RateDecision(True), RateDecision(False, 2_500)])


@st.composite
def snapshots_with_any_standing_parts(draw: st.DrawFn) -> CheckSnapshot:
    snap = draw(snapshots_of_any_account())
    instrument = draw(
        st.sampled_from(
            [
                None,
                AAPL,
                dataclasses.replace(AAPL, tradable=False),
                dataclasses.replace(AAPL, halted=True),
                dataclasses.replace(AAPL, shortable=False),
            ]
        )
    )
    return dataclasses.replace(
        snap,
        instrument=instrument,
        account_state=draw(STATES),
        venue_state=draw(STATES),
        rate=draw(RATES),
        limits=dataclasses.replace(snap.limits, allow_short=draw(st.booleans())),
    )


@given(orders(), snapshots_with_any_standing_parts())
def test_the_selected_rules_give_the_same_violations_as_all_rules(
    order: OrderToCheck, snap: CheckSnapshot
) -> None:
    assert check_order(order, snap, rules_that_can_refuse(snap)) == check_order(order, snap)


def test_an_active_account_on_a_sound_instrument_skips_the_rules_that_cannot_refuse() -> None:
    kept = rules_that_can_refuse(snapshot())
    skipped = {check_trading_state, check_rate, check_instrument, check_shortable}
    assert kept == tuple(rule for rule in ALL_RULES if rule not in skipped)


def test_a_halted_account_keeps_the_trading_state_rule() -> None:
    kept = rules_that_can_refuse(snapshot(account_state=TradingState.HALTED))
    assert check_trading_state in kept
    assert check_rate not in kept


def test_a_refusing_rate_and_a_halted_instrument_keep_their_rules() -> None:
    snap = snapshot(
        rate=RateDecision(False, 1_000), instrument=dataclasses.replace(AAPL, halted=True)
    )
    kept = rules_that_can_refuse(snap)
    assert check_rate in kept and check_instrument in kept


@given(orders(), snapshots_with_any_standing_parts())
def test_a_plain_market_order_gets_the_same_violations_without_the_price_rules(
    order: OrderToCheck, snap: CheckSnapshot
) -> None:
    plain = dataclasses.replace(
        order,
        order_type=OrderType.MARKET,
        qty=order.qty if order.qty is not None else Decimal(1),
        notional=None,
        limit_price=None,
        stop_price=None,
        trail_price=None,
        trail_percent=None,
    )
    assert is_plain_market(plain)
    shorter = rules_for_plain_market(rules_that_can_refuse(snap))
    assert check_order(plain, snap, shorter) == check_order(plain, snap)


def test_only_a_market_order_for_a_quantity_without_prices_is_plain() -> None:
    market = OrderToCheck(
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
        qty=Decimal(10),
        account_id="a",
    )
    assert is_plain_market(market)
    assert not is_plain_market(dataclasses.replace(market, qty=None, notional=Decimal(100)))
    assert not is_plain_market(dataclasses.replace(market, limit_price=Decimal(1)))
    assert not is_plain_market(
        dataclasses.replace(market, order_type=OrderType.LIMIT, limit_price=Decimal(1))
    )
    kept = rules_for_plain_market(ALL_RULES)
    assert check_prices not in kept and check_price_collar not in kept
    assert check_buying_power in kept and check_order_size in kept


def test_each_refusing_standing_part_keeps_the_rule_that_judges_it() -> None:
    sound = snapshot()
    keeps = {
        check_trading_state: [
            dataclasses.replace(sound, venue_state=TradingState.REDUCING),
            dataclasses.replace(sound, account_state=TradingState.HALTED),
        ],
        check_instrument: [
            dataclasses.replace(sound, instrument=None),
            dataclasses.replace(sound, instrument=dataclasses.replace(AAPL, tradable=False)),
            dataclasses.replace(sound, instrument=dataclasses.replace(AAPL, halted=True)),
        ],
        check_shortable: [
            dataclasses.replace(sound, instrument=dataclasses.replace(AAPL, shortable=False)),
            dataclasses.replace(sound, limits=dataclasses.replace(sound.limits, allow_short=False)),
        ],
        check_rate: [dataclasses.replace(sound, rate=RateDecision(False, 1_000))],
    }
    for rule, snaps in keeps.items():
        for snap in snaps:
            assert rule in rules_that_can_refuse(snap), (rule.__name__, snap)
    no_instrument = dataclasses.replace(sound, instrument=None)
    assert check_shortable not in rules_that_can_refuse(no_instrument)
    assert check_rate not in rules_that_can_refuse(dataclasses.replace(sound, rate=None))
    assert check_rate not in rules_that_can_refuse(
        dataclasses.replace(sound, rate=RateDecision(True))
    )


def test_a_market_order_with_any_price_term_or_without_a_quantity_is_not_plain() -> None:
    market = OrderToCheck(
        symbol="AAPL",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
        qty=Decimal(10),
        account_id="a",
    )
    assert is_plain_market(market)
    for change in (
        {"qty": None},
        {"notional": Decimal(100)},
        {"limit_price": Decimal(1)},
        {"stop_price": Decimal(1)},
        {"trail_price": Decimal(1)},
        {"trail_percent": Decimal(1)},
        {"order_type": OrderType.STOP},
    ):
        assert not is_plain_market(dataclasses.replace(market, **change)), change


def test_the_plain_market_list_drops_exactly_the_price_and_notional_rules() -> None:
    dropped = set(ALL_RULES) - set(rules_for_plain_market(ALL_RULES))
    assert dropped == {check_prices, check_tick_grid, check_notional_allowed, check_price_collar}
    assert rules_for_plain_market(ALL_RULES) == tuple(r for r in ALL_RULES if r not in dropped)
