"""Email normalization: one canonical spelling per mailbox, clear refusals otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from services.auth.emails import normalize_email


def test_case_and_surrounding_space_do_not_make_a_second_account() -> None:
    assert normalize_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    assert normalize_email("ada@example.com\n") == "ada@example.com"


@pytest.mark.parametrize(
    "valid",
    ["a@b.co", "first.last+tag@sub.example.org", "o'brien@example.ie", "x@xn--bcher-kva.example"],
)
def test_ordinary_addresses_are_accepted(valid: str) -> None:
    assert normalize_email(valid) == valid


@pytest.mark.parametrize(
    ("invalid", "hint"),
    [
        ("", "required"),
        ("   ", "required"),
        ("no-at-sign.example.com", "exactly one '@'"),
        ("two@@example.com", "exactly one '@'"),
        ("a@b@example.com", "exactly one '@'"),
        ("@example.com", "before the '@'"),
        (".ada@example.com", "before the '@'"),
        ("ada.@example.com", "before the '@'"),
        ("a..b@example.com", "before the '@'"),
        ("ada lovelace@example.com", "before the '@'"),
        ("ada@localhost", "invalid domain"),
        ("ada@-example.com", "invalid domain"),
        ("ada@example..com", "invalid domain"),
        ("ada@example.c", "top-level"),
        ("ada@example.123", "top-level"),
        ("adä@example.com", "ASCII"),
        ("ada@exämple.com", "ASCII"),
        ("a" * 65 + "@example.com", "before the '@'"),
        ("ada@" + "a" * 250 + ".com", "too long"),
    ],
)
def test_malformed_addresses_are_refused_with_a_hint(invalid: str, hint: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(invalid)
    assert hint in caught.value.message


@given(st.emails())
def test_normalizing_is_idempotent(email: str) -> None:
    try:
        once = normalize_email(email)
    except InvalidArgument:
        return
    assert normalize_email(once) == once
    assert once == once.lower().strip()
