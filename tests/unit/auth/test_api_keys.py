"""API keys: shown once, stored as a keyed hash, found by prefix, compared in constant time."""

from __future__ import annotations

import re

import pytest

from cift.runtime.errors import InvalidArgument, Unauthenticated
from services.auth.api_keys import (
    StoredApiKey,
    authenticate_key,
    check_key_name,
    generate_api_key,
    hash_secret,
    parse_api_key,
)

PEPPER = b"test-pepper-0123456789abcdef"


def stored_for(plaintext: str, *, revoked: bool = False) -> StoredApiKey:
    presented = parse_api_key(plaintext)
    return StoredApiKey(
        key_id="k1",
        prefix=presented.prefix,
        secret_hash=hash_secret(presented.prefix, presented.secret, PEPPER),
        user_id="u1",
        account_id="a1",
        scopes=frozenset({"read"}),
        revoked=revoked,
    )


def test_key_has_the_public_format_and_parses_back() -> None:
    key = generate_api_key(PEPPER)
    assert re.fullmatch(r"cift_[a-z2-7]{8}_[a-z2-7]{52}", key.plaintext)
    presented = parse_api_key(key.plaintext)
    assert presented.prefix == key.prefix
    assert key.plaintext.endswith(presented.secret)


def test_only_the_hash_is_kept_and_it_does_not_contain_the_secret() -> None:
    key = generate_api_key(PEPPER)
    secret = parse_api_key(key.plaintext).secret
    assert len(key.secret_hash) == 32
    assert secret.encode() not in key.secret_hash
    assert key.secret_hash == hash_secret(key.prefix, secret, PEPPER)


def test_keys_are_unique() -> None:
    keys = {generate_api_key(PEPPER).plaintext for _ in range(200)}
    assert len(keys) == 200


def test_presented_key_with_right_secret_authenticates() -> None:
    key = generate_api_key(PEPPER)
    record = stored_for(key.plaintext)
    assert authenticate_key(parse_api_key(key.plaintext), record, PEPPER) is record


def test_wrong_secret_under_a_real_prefix_is_refused() -> None:
    key = generate_api_key(PEPPER)
    other = generate_api_key(PEPPER)
    forged = f"cift_{key.prefix}_{parse_api_key(other.plaintext).secret}"
    with pytest.raises(Unauthenticated):
        authenticate_key(parse_api_key(forged), stored_for(key.plaintext), PEPPER)


def test_hash_made_under_another_pepper_does_not_match() -> None:
    key = generate_api_key(b"another-pepper")
    with pytest.raises(Unauthenticated):
        authenticate_key(
            parse_api_key(key.plaintext),
            StoredApiKey("k", key.prefix, key.secret_hash, "u", "a", frozenset({"read"}), False),
            PEPPER,
        )


def test_revoked_key_is_refused_with_the_same_message_as_a_wrong_one() -> None:
    key = generate_api_key(PEPPER)
    with pytest.raises(Unauthenticated) as revoked:
        authenticate_key(
            parse_api_key(key.plaintext), stored_for(key.plaintext, revoked=True), PEPPER
        )
    with pytest.raises(Unauthenticated) as unknown:
        authenticate_key(parse_api_key(key.plaintext), None, PEPPER)
    assert revoked.value.message == unknown.value.message


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "cift_",
        "cift_abcdefgh_",
        "cift_ABCDEFGH_" + "a" * 52,
        "cift_abcdefgh_" + "a" * 51,
        "cift_abcdefgh_" + "a" * 53,
        "cift_abcdefg1_" + "a" * 52,
        "sk_live_abcdefgh_" + "a" * 52,
        "cift_abcdefgh_" + "a" * 52 + "\x00",
    ],
)
def test_strings_that_cannot_be_keys_are_refused_before_any_lookup(garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        parse_api_key(garbage)


def test_key_name_is_required_and_bounded() -> None:
    assert check_key_name("  trading bot ") == "trading bot"
    for bad in ("", "   ", "x" * 101, "bell\x07"):
        with pytest.raises(InvalidArgument):
            check_key_name(bad)
