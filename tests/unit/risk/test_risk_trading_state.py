"""Trading states: which is stricter, and what "reducing" lets through."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from cift.trading.pretrade.trading_state import TradingState, effective_state, reduces_position
from cift.trading.vocabulary import Side

D = Decimal


def test_kill_switch_overrides_an_active_account() -> None:
    assert effective_state(TradingState.ACTIVE, TradingState.HALTED) is TradingState.HALTED


def test_halted_account_stays_halted_when_the_venue_is_reducing() -> None:
    assert effective_state(TradingState.HALTED, TradingState.REDUCING) is TradingState.HALTED


def test_state_names_parse_case_insensitively() -> None:
    assert TradingState.parse(" Reducing ") is TradingState.REDUCING


def test_unknown_state_name_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="active, reducing, halted"):
        TradingState.parse("paused")


def test_sell_of_part_of_a_long_reduces() -> None:
    assert reduces_position(Side.SELL, D(5), D(10), D(0))


def test_buy_on_a_long_never_reduces() -> None:
    assert not reduces_position(Side.BUY, D(5), D(10), D(0))


def test_order_of_unknown_size_never_reduces() -> None:
    assert not reduces_position(Side.SELL, None, D(10), D(0))


@given(
    side=st.sampled_from(Side),
    qty=st.integers(1, 1000).map(Decimal),
    position=st.integers(-1000, 1000).map(Decimal),
    open_same=st.integers(0, 1000).map(Decimal),
)
def test_reducing_order_with_its_resting_siblings_never_crosses_zero(
    side: Side, qty: Decimal, position: Decimal, open_same: Decimal
) -> None:
    if reduces_position(side, qty, position, open_same):
        worst = position + side.sign * (open_same + qty)
        assert abs(worst) < abs(position)
        assert worst == 0 or (worst > 0) == (position > 0)
