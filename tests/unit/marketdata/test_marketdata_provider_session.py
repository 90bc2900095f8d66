"""Reconnect delays, provider timestamps, the live buffer and rate-limit waits: pure parts."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.marketdata.providers.backfill import retry_after_s
from services.marketdata.providers.backoff import Backoff
from services.marketdata.providers.session import LiveSource
from services.marketdata.providers.times import rfc3339, rfc3339_ns
from services.marketdata.ticks import Trade


def test_backoff_bounds_double_from_the_first_delay_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0)
    assert [backoff.bound_s(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.bound_s(10_000) == 30.0


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=40))
def test_backoff_delays_are_jittered_within_a_tenth_of_the_bound_and_the_bound(
    seed: int, attempts: int
) -> None:
    backoff = Backoff(0.25, 20.0, random.Random(seed))
    for n in range(1, attempts + 1):
        delay = backoff.next_delay_s()
        assert backoff.bound_s(n) / 10 <= delay <= backoff.bound_s(n)


def test_backoff_jitter_spreads_clients_and_reset_starts_over() -> None:
    delays = {Backoff(1.0, 60.0, random.Random(seed)).next_delay_s() for seed in range(50)}
    assert len(delays) == 50  # fifty clients cut off together do not come back together
    backoff = Backoff(1.0, 60.0, random.Random(1))
    for _ in range(6):
        backoff.next_delay_s()
    backoff.reset()
    assert backoff.next_delay_s() <= 1.0


def test_backoff_refuses_a_zero_or_inverted_range() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-02-22T15:51:45.335689322Z", 1614009105_335689322),
        ("2021-02-22T15:51:45Z", 1614009105_000000000),
        ("2021-02-22T15:51:45.1Z", 1614009105_100000000),
        ("2021-02-22T10:51:45.000000001-05:00", 1614009105_000000001),
    ],
)
def test_rfc3339_to_nanoseconds_exactly(text: str, expected: int) -> None:
    assert rfc3339_ns(text) == expected


@pytest.mark.parametrize(
    "text", ["2021-02-22T15:51:45", "2021-02-22T15:51:45.1234567891Z", "yesterday", ""]
)
def test_rfc3339_without_zone_or_with_too_fine_a_fraction_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        rfc3339_ns(text)


@given(st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s * 10**9))
def test_whole_second_rfc3339_round_trips(ts_ns: int) -> None:
    assert rfc3339_ns(rfc3339(ts_ns)) == ts_ns


def trades(n: int) -> list[Trade]:
    return [Trade("AAPL", i, 1.0, 1.0) for i in range(n)]


async def test_a_full_buffer_drops_new_ticks_and_counts_them_without_blocking() -> None:
    source = LiveSource(capacity=5, provider="test")
    source.push(trades(3))
    source.push(trades(4))  # two fit, two are dropped
    assert (len(source), source.dropped) == (5, 2)
    drained = source.due(0)
    assert [t.ts_ns for t in drained] == [0, 1, 2, 0, 1]
    source.push(trades(1))
    assert (len(source), source.dropped) == (1, 2)


async def test_ready_returns_as_soon_as_ticks_arrive() -> None:
    source = LiveSource(capacity=10, provider="test")
    waiter = asyncio.create_task(source.ready(5.0))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    source.push(trades(1))
    await asyncio.wait_for(waiter, 1.0)


async def test_a_cancel_that_meets_arriving_ticks_still_ends_the_wait() -> None:
    # The feed loop waits in ready() until its task is cancelled (a service's drain).
    # Ticks pushed in the same loop turn as the cancel must not swallow it: with 3.11's
    # wait_for the wait returned normally and the feed loop ran on, hanging the drain.
    source = LiveSource(capacity=10, provider="test")
    waiter = asyncio.create_task(source.ready(5.0))
    await asyncio.sleep(0.01)
    source.push(trades(1))
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


def response(headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(429, headers=headers)


def test_retry_after_in_seconds_as_a_date_or_from_the_rate_limit_reset() -> None:
    now = 1_700_000_000.0
    assert retry_after_s(response({"Retry-After": "7"}), now) == 7.0
    assert retry_after_s(response({"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}), now) == 10.0
    assert retry_after_s(response({"X-RateLimit-Reset": "1700000003"}), now) == 3.0
    assert retry_after_s(response({}), now) is None
