"""Login throttling arithmetic: how long a client waits after failed logins, and who waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import ResourceExhausted
from services.auth.throttle import (
    BackoffPolicy,
    ThrottlePolicy,
    address_key,
    backoff_wait_s,
    client_address_from_peer,
    pair_key,
    refuse_if_throttled,
    retry_after_s,
)

ACCOUNT = ThrottlePolicy(max_failures=5, window_s=900)
ADDRESS = ThrottlePolicy(max_failures=20, window_s=900)
PAIR = BackoffPolicy(free_failures=5, base_s=1.0, max_s=300.0, memory_s=900.0)


def test_the_free_failures_need_no_wait() -> None:
    assert backoff_wait_s(PAIR, 4, 0.0) is None


def test_each_failure_beyond_the_free_ones_doubles_the_wait_up_to_the_cap() -> None:
    waits = [backoff_wait_s(PAIR, failures, 0.0) for failures in range(5, 16)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]
    assert backoff_wait_s(PAIR, 10_000, 0.0) == 300.0


def test_the_wait_counts_from_the_last_failure_in_whole_seconds() -> None:
    assert backoff_wait_s(PAIR, 8, 2.5) == 6.0  # 8 s after the last failure, 2.5 s gone
    assert backoff_wait_s(PAIR, 8, 7.9) == 1.0
    assert backoff_wait_s(PAIR, 8, 8.0) is None


@given(st.integers(0, 1000), st.floats(-10, 10_000, allow_nan=False))
def test_a_backoff_wait_is_none_or_a_whole_number_of_seconds_within_the_cap(
    failures: int, since_last_s: float
) -> None:
    wait = backoff_wait_s(PAIR, failures, since_last_s)
    assert wait is None or (1 <= wait <= PAIR.max_s and wait == int(wait))


@pytest.mark.parametrize(
    ("free", "base", "cap", "memory"),
    [(0, 1, 300, 900), (5, 0, 300, 900), (5, 10, 5, 900), (5, 1, 300, 0)],
)
def test_nonsense_backoff_is_a_configuration_error(
    free: int, base: float, cap: float, memory: float
) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(free_failures=free, base_s=base, max_s=cap, memory_s=memory)


def test_attempts_allowed_below_the_limit() -> None:
    assert retry_after_s(ACCOUNT, 4, 600.0) is None


def test_limit_reached_waits_for_the_rest_of_the_window() -> None:
    assert retry_after_s(ACCOUNT, 5, 599.2) == 600.0


def test_lost_expiry_counts_as_a_whole_window() -> None:
    assert retry_after_s(ACCOUNT, 9, -1.0) == 900.0


def test_wait_is_never_below_one_second() -> None:
    assert retry_after_s(ACCOUNT, 5, 0.01) == 1.0


def test_throttled_login_is_resource_exhausted_with_the_longer_wait() -> None:
    with pytest.raises(ResourceExhausted) as caught:
        refuse_if_throttled((PAIR, 7, 0.0), (ADDRESS, 20, 400.0))
    assert caught.value.retry_after_s == 400.0
    assert caught.value.reason == "LOGIN_THROTTLED"
    assert "400 seconds" in caught.value.message
    with pytest.raises(ResourceExhausted) as caught:
        refuse_if_throttled((PAIR, 7, 0.0), (ADDRESS, 0, 0.0))
    assert caught.value.retry_after_s == 4.0


def test_address_alone_can_throttle() -> None:
    with pytest.raises(ResourceExhausted):
        refuse_if_throttled((PAIR, 0, 0.0), (ADDRESS, 20, 10.0))


def test_nothing_full_means_no_refusal_and_one_more_failure_or_less_time_refuses() -> None:
    refuse_if_throttled((PAIR, 4, 0.0), (ADDRESS, 19, 10.0))
    refuse_if_throttled((PAIR, 6, 2.0), (ADDRESS, 19, 10.0))  # its 2 s wait is over
    for pair, address, wait in [
        ((PAIR, 5, 0.0), (ADDRESS, 19, 10.0), 1.0),  # the pair's first paid failure
        ((PAIR, 4, 0.0), (ADDRESS, 20, 10.0), 10.0),  # the address's window is full
        ((PAIR, 6, 1.9), (ADDRESS, 19, 10.0), 1.0),  # 0.1 s of the 2 s wait left
    ]:
        with pytest.raises(ResourceExhausted) as caught:
            refuse_if_throttled(pair, address)
        assert caught.value.retry_after_s == wait


@pytest.mark.parametrize(("failures", "window"), [(0, 900), (5, 0), (5, -1)])
def test_nonsense_policy_is_a_configuration_error(failures: int, window: float) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(max_failures=failures, window_s=window)


def test_pair_key_does_not_contain_the_email_and_differs_per_address() -> None:
    key = pair_key("ada@example.com", "203.0.113.7")
    assert "ada" not in key and "example" not in key
    assert key == pair_key("ada@example.com", "203.0.113.7")
    assert key != pair_key("bob@example.com", "203.0.113.7")
    assert key != pair_key("ada@example.com", "203.0.113.8")


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:203.0.113.7:51234", "203.0.113.7"),
        ("ipv6:[2001:db8::1]:443", "2001:db8::/64"),
        ("ipv6:%5B2001:db8::abcd:1%5D:443", "2001:db8::/64"),
        ("ipv6:[::ffff:203.0.113.7]:443", "203.0.113.7"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
        ("", "unknown"),
    ],
)
def test_client_address_from_grpc_peer(peer: str, address: str) -> None:
    assert client_address_from_peer(peer) == address


def test_address_key_names_the_address() -> None:
    assert address_key("203.0.113.7").endswith(":address:203.0.113.7")


@given(st.integers(0, 100), st.floats(-10, 10_000, allow_nan=False))
def test_retry_after_is_none_or_a_positive_whole_number(failures: int, remaining: float) -> None:
    wait = retry_after_s(ACCOUNT, failures, remaining)
    if failures < ACCOUNT.max_failures:
        assert wait is None
    else:
        assert (
            wait is not None and wait >= 1 and wait == int(wait) and wait <= max(remaining + 1, 900)
        )
