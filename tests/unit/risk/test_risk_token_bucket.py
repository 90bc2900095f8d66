"""The per-account order-rate token bucket (the arithmetic the Redis script mirrors)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from cift.trading.pretrade.token_bucket import BucketState, RateDecision, rate_milli, take

US = 1_000_000
T0 = 1_700_000_000 * US


def run(times_us: list[int], rate: int, burst: int) -> list[RateDecision]:
    state: BucketState | None = None
    decisions = []
    for now in times_us:
        state, decision = take(state, now, rate, burst)
        decisions.append(decision)
    return decisions


def test_quiet_account_may_send_a_full_burst_at_once() -> None:
    decisions = run([T0] * 5, rate=rate_milli(Decimal(1)), burst=5)
    assert all(d.allowed for d in decisions)


def test_order_past_the_burst_is_refused_with_the_wait_until_a_token() -> None:
    decisions = run([T0] * 6, rate=rate_milli(Decimal(2)), burst=5)
    assert decisions[-1] == RateDecision(False, retry_after_us=500_000)
    assert decisions[-1].retry_after_s == Decimal("0.5")


def test_retrying_after_the_advised_wait_succeeds() -> None:
    rate = rate_milli(Decimal(3))
    state, _ = take(None, T0, rate, 1)
    state, refused = take(state, T0 + 1, rate, 1)
    assert not refused.allowed
    _, retried = take(state, T0 + 1 + refused.retry_after_us, rate, 1)
    assert retried.allowed


def test_bucket_refills_at_the_configured_rate() -> None:
    rate = rate_milli(Decimal(10))
    decisions = run([T0, T0 + 50_000, T0 + 100_000], rate=rate, burst=1)
    assert [d.allowed for d in decisions] == [True, False, True]


def test_a_long_pause_refills_only_up_to_the_burst() -> None:
    rate = rate_milli(Decimal(100))
    state, _ = take(None, T0, rate, 3)
    times = [T0 + 3600 * US] * 4
    decisions = []
    for now in times:
        state, decision = take(state, now, rate, 3)
        decisions.append(decision.allowed)
    assert decisions == [True, True, True, False]


def test_clock_stepping_back_mints_no_tokens() -> None:
    rate = rate_milli(Decimal(1))
    state, _ = take(None, T0, rate, 1)
    state, refused = take(state, T0 - 10 * US, rate, 1)
    assert not refused.allowed
    assert state.ts_us == T0


def test_fractional_rates_are_allowed_to_three_decimals() -> None:
    assert rate_milli(Decimal("0.5")) == 500
    with pytest.raises(InvalidArgument):
        rate_milli(Decimal("0.0005"))
    with pytest.raises(InvalidArgument):
        rate_milli(Decimal(0))


def test_zero_burst_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        take(None, T0, 1000, 0)


@given(
    rate=st.integers(1, 1_000_000),
    burst=st.integers(1, 1000),
    gaps=st.lists(st.integers(0, 2 * US), min_size=1, max_size=200),
)
def test_never_more_orders_than_burst_plus_refill(rate: int, burst: int, gaps: list[int]) -> None:
    times = []
    now = T0
    for gap in gaps:
        now += gap
        times.append(now)
    allowed = sum(d.allowed for d in run(times, rate, burst))
    elapsed_us = times[-1] - T0
    assert allowed <= burst + elapsed_us * rate // (1000 * US)


@given(rate=st.integers(1, 1_000_000), burst=st.integers(1, 100), gap=st.integers(0, 10 * US))
def test_refused_order_is_told_exactly_when_a_token_will_be_there(
    rate: int, burst: int, gap: int
) -> None:
    state: BucketState | None = None
    for _ in range(burst):
        state, _ = take(state, T0, rate, burst)
    state, refused = take(state, T0 + gap, rate, burst)
    if refused.allowed:
        return
    assert refused.retry_after_us > 0
    _, early = take(state, T0 + gap + refused.retry_after_us - 1, rate, burst)
    _, on_time = take(state, T0 + gap + refused.retry_after_us, rate, burst)
    assert not early.allowed and on_time.allowed
