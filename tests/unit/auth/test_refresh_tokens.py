"""Refresh tokens: single use, rotated in families, reuse revokes the family."""

from __future__ import annotations

import pytest

from cift.runtime.errors import Unauthenticated
from services.auth.refresh_tokens import (
    RefreshVerdict,
    StoredRefreshToken,
    hash_refresh_token,
    issue_refresh_token,
    judge_refresh,
    presented_token_hash,
    refusal,
)

NOW = 1_700_000_000.0


def stored(
    *, spent: bool = False, revoked: bool = False, expires_at: float = NOW + 60
) -> StoredRefreshToken:
    return StoredRefreshToken("t1", "f1", "u1", expires_at=expires_at, spent=spent, revoked=revoked)


def test_issued_token_is_opaque_random_and_stored_as_hash() -> None:
    issued = issue_refresh_token("family", now=NOW, ttl_s=3600)
    assert len(issued.token) == 43
    assert issued.token_hash == hash_refresh_token(issued.token)
    assert issued.token.encode() not in issued.token_hash
    assert issued.expires_at == NOW + 3600
    assert issued.family_id == "family"
    assert issue_refresh_token("family", now=NOW, ttl_s=1).token != issued.token


def test_presented_token_hashes_like_the_issued_one() -> None:
    issued = issue_refresh_token("family", now=NOW, ttl_s=3600)
    assert presented_token_hash(f" {issued.token} ") == issued.token_hash


@pytest.mark.parametrize("garbage", ["", "short", "x" * 44, "!" * 43, "a.b.c"])
def test_malformed_tokens_are_refused_without_lookup(garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        presented_token_hash(garbage)


def test_live_unspent_token_rotates() -> None:
    assert judge_refresh(stored(), now=NOW) is RefreshVerdict.ROTATE


def test_spent_token_presented_again_is_reuse() -> None:
    assert judge_refresh(stored(spent=True), now=NOW) is RefreshVerdict.REUSED


def test_spent_token_after_family_revoked_changes_nothing_more() -> None:
    assert judge_refresh(stored(spent=True, revoked=True), now=NOW) is RefreshVerdict.REFUSED


@pytest.mark.parametrize(
    "token", [None, stored(revoked=True), stored(expires_at=NOW), stored(expires_at=NOW - 1)]
)
def test_unknown_revoked_or_expired_tokens_are_refused(token: StoredRefreshToken | None) -> None:
    assert judge_refresh(token, now=NOW) is RefreshVerdict.REFUSED


def test_reuse_refusal_explains_the_sign_out() -> None:
    error = refusal(RefreshVerdict.REUSED)
    assert error.reason == "REFRESH_TOKEN_REUSED"
    assert "signed out" in error.message
    assert refusal(RefreshVerdict.REFUSED).reason == "REFRESH_TOKEN_INVALID"
