"""The shorter rule list a repeat checker uses gives every order the verdict all the rules give."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from cift.trading.pretrade.checks import check_order, rules_that_can_refuse
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.rules import (
    ALL_RULES,
    check_instrument,
    check_rate,
    check_shortable,
    check_trading_state,
)
from cift.trading.pretrade.snapshot import CheckSnapshot
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
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
