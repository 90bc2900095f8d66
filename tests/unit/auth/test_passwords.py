"""Password strength rules and bcrypt hashing (tests use bcrypt's minimum cost)."""

from __future__ import annotations

import pytest

from cift.runtime.errors import InvalidArgument
from services.auth.passwords import (
    check_bcrypt_cost,
    check_password_strength,
    hash_password,
    needs_rehash,
    verify_password,
)

COST = 4


@pytest.mark.parametrize(
    ("password", "hint"),
    [
        ("short1!", "too short"),
        ("x1" * 65, "too long"),
        (" leading-space-9", "whitespace"),
        ("has\ttab-1234", "control"),
        ("Password123", "most common"),
        ("QWERTYUIOP", "most common"),
        ("aaaa1111aaaa", "too few"),
        ("onlyletterslong", "mix letters"),
        ("12345678901234", "mix letters"),
    ],
)
def test_weak_passwords_are_refused_with_the_rule_broken(password: str, hint: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_password_strength(password)
    assert hint in caught.value.message


def test_password_containing_the_email_name_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_password_strength("lovelace-2024!", email="lovelace@example.com")
    assert "email" in caught.value.message


@pytest.mark.parametrize(
    "password", ["correct horse battery", "Tr0ub4dor&3x", "9 lives of a cat", "ünïcødé-pässwörd-7"]
)
def test_reasonable_passwords_are_accepted_until_they_contain_the_email_name(
    password: str,
) -> None:
    check_password_strength(password, email="ada@example.com")
    # The same password, checked for an account whose email name it contains, is refused:
    # acceptance above was a judgement of this password, not a validator that passes all.
    with pytest.raises(InvalidArgument, match="email"):
        check_password_strength(password, email=f"{password[:6]}@example.com")


def test_length_limits_are_inclusive() -> None:
    shortest, longest = "abcd-12345", "abcd-12345" + "x" * 118
    assert (len(shortest), len(longest)) == (10, 128)
    check_password_strength(shortest)
    check_password_strength(longest)
    with pytest.raises(InvalidArgument, match="too short"):
        check_password_strength(shortest[:-1])
    with pytest.raises(InvalidArgument, match="too long"):
        check_password_strength(longest + "x")


def test_five_distinct_characters_are_enough_and_four_are_not() -> None:
    check_password_strength("abcd1abcd1abcd1")
    with pytest.raises(InvalidArgument, match="different"):
        check_password_strength("abc1abc1abc1abc1")


def test_an_email_name_shorter_than_four_characters_is_not_checked() -> None:
    check_password_strength("bob-is-my-name-7", email="bob@example.com")
    with pytest.raises(InvalidArgument, match="email"):
        check_password_strength("bobby-is-my-name-7", email="bobby@example.com")


def test_hash_verifies_only_the_same_password() -> None:
    stored = hash_password("correct horse battery", cost=COST)
    assert stored.startswith("$2b$04$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_same_password_hashes_differently_each_time() -> None:
    assert hash_password("correct horse battery", cost=COST) != hash_password(
        "correct horse battery", cost=COST
    )


def test_long_passphrases_differing_after_72_bytes_are_different_passwords() -> None:
    base = "a long shared passphrase prefix that is well over seventy-two bytes, really, 1"
    stored = hash_password(base + "A", cost=COST)
    assert verify_password(base + "A", stored)
    assert not verify_password(base + "B", stored)


def test_malformed_stored_hash_never_verifies() -> None:
    assert not verify_password("anything at all 1", "not-a-bcrypt-hash")
    assert not verify_password("anything at all 1", "")


def test_hash_with_another_cost_needs_rehash() -> None:
    stored = hash_password("correct horse battery", cost=COST)
    assert not needs_rehash(stored, cost=COST)
    assert needs_rehash(stored, cost=5)
    assert needs_rehash("garbage", cost=COST)


@pytest.mark.parametrize("cost", [3, 17, -1])
def test_out_of_range_cost_is_a_configuration_error(cost: int) -> None:
    with pytest.raises(ValueError):
        check_bcrypt_cost(cost)
