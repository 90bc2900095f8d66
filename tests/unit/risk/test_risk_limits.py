"""Limits: config defaults, an account's overrides over them, and values refused outright."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from cift.trading.pretrade.limits import (
    LIMIT_FIELDS,
    LimitOverrides,
    RiskLimits,
    effective_limits,
    validate,
)
from cift.trading.pretrade.token_bucket import MAX_BURST

D = Decimal


def test_account_without_overrides_gets_the_defaults() -> None:
    defaults = RiskLimits(max_order_qty=D(7))
    assert effective_limits(defaults, LimitOverrides()) == defaults


def test_override_wins_over_default_and_others_are_inherited() -> None:
    defaults = RiskLimits()
    merged = effective_limits(defaults, LimitOverrides(max_order_qty=D(5), max_open_orders=3))
    assert merged.max_order_qty == D(5)
    assert merged.max_open_orders == 3
    assert merged.max_gross_exposure == defaults.max_gross_exposure


def test_raising_a_default_raises_it_for_accounts_that_did_not_pin_it() -> None:
    overrides = LimitOverrides(max_order_qty=D(5))
    merged = effective_limits(RiskLimits(max_open_orders=9), overrides)
    assert merged.max_open_orders == 9


def test_update_pins_new_values_and_keeps_earlier_ones() -> None:
    current = LimitOverrides(max_order_qty=D(5))
    updated = current.updated(LimitOverrides(price_collar_pct=D(3)))
    assert updated == LimitOverrides(max_order_qty=D(5), price_collar_pct=D(3))


def test_cleared_field_returns_to_the_default() -> None:
    current = LimitOverrides(max_order_qty=D(5), max_open_orders=2)
    updated = current.updated(LimitOverrides(), cleared=frozenset({"max_order_qty"}))
    assert updated == LimitOverrides(max_open_orders=2)


def test_clearing_an_unknown_field_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="max_banana"):
        LimitOverrides().updated(LimitOverrides(), cleared=frozenset({"max_banana"}))


def test_override_fields_match_limit_fields() -> None:
    assert set(LimitOverrides().__dataclass_fields__) == LIMIT_FIELDS


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (LimitOverrides(max_order_qty=D(0)), "max_order_qty must be greater than zero"),
        (LimitOverrides(max_gross_exposure=D(-1)), "max_gross_exposure must be greater than zero"),
        (LimitOverrides(max_open_orders=0), "max_open_orders must be at least 1"),
        (LimitOverrides(price_collar_pct=D(0)), "price_collar_pct"),
        (LimitOverrides(price_collar_pct=D(101)), "price_collar_pct"),
        (LimitOverrides(orders_per_second=D("0.0001")), "3 decimal places"),
        (LimitOverrides(orders_per_second=D(0)), "orders_per_second"),
        (LimitOverrides(order_burst=2_000_000), "order_burst must be at most"),
    ],
)
def test_unworkable_limits_are_refused(overrides: LimitOverrides, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        validate(overrides)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate(LimitOverrides(max_order_qty=D(0), max_open_orders=0))
    assert "max_order_qty" in caught.value.message and "max_open_orders" in caught.value.message


def test_defaults_are_valid_and_each_zeroed_size_or_count_is_refused_by_name() -> None:
    defaults = RiskLimits()
    validate(defaults)
    for name in sorted(LIMIT_FIELDS):
        value = getattr(defaults, name)
        if isinstance(value, bool):
            continue  # a switch: both values are valid
        with pytest.raises(InvalidArgument, match=name):
            validate(dataclasses.replace(defaults, **{name: type(value)(0)}))


@pytest.mark.parametrize(
    ("field", "smallest", "refused"),
    [
        ("max_order_qty", D("0.000000001"), D(0)),
        ("max_order_notional", D("0.01"), D(0)),
        ("max_position_qty", D("0.000000001"), D(0)),
        ("max_position_notional", D("0.01"), D(0)),
        ("max_gross_exposure", D("0.01"), D(0)),
        ("max_quote_age_s", D("0.001"), D(0)),
        ("price_collar_pct", D("0.01"), D(0)),
        ("orders_per_second", D("0.01"), D(0)),
        ("max_open_orders", 1, 0),
        ("order_burst", 1, 0),
    ],
)
def test_each_limit_accepts_its_smallest_value_and_refuses_the_one_below(
    field: str, smallest: object, refused: object
) -> None:
    validate(LimitOverrides(**{field: smallest}))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=field):
        validate(LimitOverrides(**{field: refused}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "largest", "refused"),
    [
        ("price_collar_pct", D(100), D("100.01")),
        ("orders_per_second", D(100_000), D("100000.01")),
        ("order_burst", MAX_BURST, MAX_BURST + 1),
    ],
)
def test_capped_limits_accept_their_cap_and_refuse_beyond_it(
    field: str, largest: object, refused: object
) -> None:
    validate(LimitOverrides(**{field: largest}))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=field):
        validate(LimitOverrides(**{field: refused}))  # type: ignore[arg-type]


@given(
    default=st.integers(1, 10**6).map(Decimal),
    pinned=st.one_of(st.none(), st.integers(1, 10**6).map(Decimal)),
)
def test_effective_value_is_the_pin_when_present_else_the_default(
    default: Decimal, pinned: Decimal | None
) -> None:
    merged = effective_limits(
        RiskLimits(max_position_qty=default), LimitOverrides(max_position_qty=pinned)
    )
    assert merged.max_position_qty == (pinned if pinned is not None else default)
