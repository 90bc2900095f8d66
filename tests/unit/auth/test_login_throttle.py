"""Login throttling arithmetic: when failed logins lock further attempts, and for how long."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import ResourceExhausted
from services.auth.throttle import (
    ThrottlePolicy,
    account_key,
    address_key,
    client_address_from_peer,
    refuse_if_throttled,
    retry_after_s,
)

ACCOUNT = ThrottlePolicy(max_failures=5, window_s=900)
ADDRESS = ThrottlePolicy(max_failures=20, window_s=900)


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
        refuse_if_throttled((ACCOUNT, 5, 30.0), (ADDRESS, 20, 400.0))
    assert caught.value.retry_after_s == 400.0
    assert caught.value.reason == "LOGIN_THROTTLED"
    assert "400 seconds" in caught.value.message


def test_address_alone_can_throttle() -> None:
    with pytest.raises(ResourceExhausted):
        refuse_if_throttled((ACCOUNT, 0, 0.0), (ADDRESS, 20, 10.0))


def test_nothing_full_means_no_refusal() -> None:
    refuse_if_throttled((ACCOUNT, 4, 10.0), (ADDRESS, 19, 10.0))


@pytest.mark.parametrize(("failures", "window"), [(0, 900), (5, 0), (5, -1)])
def test_nonsense_policy_is_a_configuration_error(failures: int, window: float) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(max_failures=failures, window_s=window)


def test_account_key_does_not_contain_the_email() -> None:
    key = account_key("ada@example.com")
    assert "ada" not in key and "example" not in key
    assert key == account_key("ada@example.com")
    assert key != account_key("bob@example.com")


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
