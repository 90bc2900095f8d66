"""Signing keys: minting, rotation without logging anybody out, and sealed storage."""

from __future__ import annotations

import pytest

from cift.runtime.errors import Unauthenticated
from cift.runtime.tokens import UnknownKeyId, jwk_thumbprint, parse_jwks, verify_token
from services.auth.signing import (
    DEFAULT_ACCESS_TOKEN_TTL_S,
    PUBLICATION_MARGIN_S,
    KeyRing,
    SigningKey,
    TokenSubject,
    mint_access_token,
    new_signing_key,
    open_private_key,
    seal_private_key,
)

NOW = 1_700_000_000.0
TTL = DEFAULT_ACCESS_TOKEN_TTL_S
SUBJECT = TokenSubject("user-1", "acct-1", frozenset({"trade", "read"}))


def mint(key: SigningKey, *, now: float = NOW, ttl_s: float = TTL) -> str:
    return mint_access_token(
        key, SUBJECT, issuer="cift-auth", audience="cift", now=now, ttl_s=ttl_s
    )


def verify_with(ring: KeyRing, token: str, *, now: float) -> str:
    keys = parse_jwks(ring.jwks(now=now, max_token_ttl_s=TTL))
    identity, _ = verify_token(token, keys, issuer="cift-auth", audience="cift", now=now)
    return identity.user_id


def test_minted_token_verifies_with_design_claims() -> None:
    ring = KeyRing.of([new_signing_key(now=NOW)])
    token = mint(ring.active)
    keys = parse_jwks(ring.jwks(now=NOW, max_token_ttl_s=TTL))
    identity, expires_at = verify_token(token, keys, issuer="cift-auth", audience="cift", now=NOW)
    assert (identity.user_id, identity.account_id) == ("user-1", "acct-1")
    assert identity.scopes == {"read", "trade"}
    assert expires_at == NOW + 15 * 60


def test_each_token_has_its_own_jti() -> None:
    key = new_signing_key(now=NOW)
    assert mint(key) != mint(key)


def test_kid_is_the_public_key_thumbprint() -> None:
    key = new_signing_key(now=NOW)
    assert key.kid == jwk_thumbprint(key.private_key.public_key())
    assert key.jwk()["kid"] == key.kid
    assert "d" not in key.jwk()  # the private half is never published


def test_repr_never_shows_the_private_key() -> None:
    assert "private_key" not in repr(new_signing_key(now=NOW))


def test_rotation_signs_with_the_new_key_and_keeps_old_tokens_valid() -> None:
    old = new_signing_key(now=NOW)
    ring = KeyRing.of([old])
    old_token = mint(old, now=NOW)
    new = new_signing_key(now=NOW + 100)
    ring = ring.rotate(new, now=NOW + 100)
    assert ring.active.kid == new.kid
    assert [k.kid for k in ring.keys] == [new.kid, old.kid]
    assert ring.keys[1].retired_at == NOW + 100
    assert verify_with(ring, old_token, now=NOW + 200) == "user-1"
    assert verify_with(ring, mint(ring.active, now=NOW + 200), now=NOW + 200) == "user-1"


def test_retired_key_leaves_the_jwks_once_its_tokens_are_all_expired() -> None:
    old = new_signing_key(now=NOW)
    ring = KeyRing.of([old]).rotate(new_signing_key(now=NOW + 100), now=NOW + 100)
    still = NOW + 100 + TTL + PUBLICATION_MARGIN_S - 1
    gone = NOW + 100 + TTL + PUBLICATION_MARGIN_S
    assert old.kid in {k.kid for k in ring.published(now=still, max_token_ttl_s=TTL)}
    assert old.kid not in {k.kid for k in ring.published(now=gone, max_token_ttl_s=TTL)}
    with pytest.raises(UnknownKeyId):
        verify_with(ring, mint(old, now=gone - 10, ttl_s=TTL), now=gone)


def test_double_rotation_keeps_first_retirement_time() -> None:
    a = new_signing_key(now=NOW)
    ring = KeyRing.of([a]).rotate(new_signing_key(now=NOW + 10), now=NOW + 10)
    ring = ring.rotate(new_signing_key(now=NOW + 20), now=NOW + 20)
    assert [k.retired_at for k in ring.keys] == [None, NOW + 20, NOW + 10]


def test_rotation_is_due_after_the_configured_age() -> None:
    ring = KeyRing.of([new_signing_key(now=NOW)])
    assert not ring.due_for_rotation(now=NOW + 99, rotate_after_s=100)
    assert ring.due_for_rotation(now=NOW + 100, rotate_after_s=100)


def test_ring_refuses_to_be_empty_or_led_by_a_retired_key() -> None:
    with pytest.raises(ValueError):
        KeyRing.of([])
    retired = new_signing_key(now=NOW)
    retired = SigningKey(retired.kid, retired.private_key, retired.created_at, retired_at=NOW)
    with pytest.raises(ValueError):
        KeyRing.of([retired])


def test_ring_orders_keys_newest_first() -> None:
    a, b = new_signing_key(now=NOW), new_signing_key(now=NOW + 5)
    b_retired = SigningKey(b.kid, b.private_key, b.created_at, NOW + 6)
    c = new_signing_key(now=NOW + 6)
    ring = KeyRing.of([a, c, b_retired])
    assert ring.active is c


def test_sealed_key_round_trips_and_hides_key_material() -> None:
    key = new_signing_key(now=NOW)
    raw = key.private_key.private_bytes_raw()
    sealed = seal_private_key(key, "operator secret")
    assert raw not in sealed
    opened = open_private_key(key.kid, sealed, "operator secret")
    assert opened.private_bytes_raw() == raw


def test_sealed_key_does_not_open_with_another_secret_or_on_another_row() -> None:
    key, other = new_signing_key(now=NOW), new_signing_key(now=NOW)
    sealed = seal_private_key(key, "operator secret")
    with pytest.raises(ValueError, match="cannot be decrypted"):
        open_private_key(key.kid, sealed, "wrong secret")
    with pytest.raises(ValueError, match="cannot be decrypted"):
        open_private_key(other.kid, sealed, "operator secret")
    with pytest.raises(ValueError, match="no signing-key secret"):
        open_private_key(key.kid, sealed, "")


def test_unsealed_storage_still_checks_the_kid() -> None:
    key, other = new_signing_key(now=NOW), new_signing_key(now=NOW)
    stored = seal_private_key(key, "")
    assert (
        open_private_key(key.kid, stored, "").private_bytes_raw()
        == key.private_key.private_bytes_raw()
    )
    with pytest.raises(ValueError, match="does not match"):
        open_private_key(other.kid, stored, "")
    with pytest.raises(ValueError, match="unknown format"):
        open_private_key(key.kid, b"garbage", "")


def test_token_from_a_foreign_key_with_our_kid_is_refused() -> None:
    ours, foreign = new_signing_key(now=NOW), new_signing_key(now=NOW)
    ring = KeyRing.of([ours])
    impostor = SigningKey(ours.kid, foreign.private_key, NOW)
    with pytest.raises(Unauthenticated):
        verify_with(ring, mint(impostor), now=NOW)
