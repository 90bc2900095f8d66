"""Refresh tokens: opaque, single-use, grouped in families for reuse detection.

Each login starts a family. Every refresh spends the presented token and issues
its successor in the same family. A spent token presented again means two parties
hold the family (the legitimate client and whoever copied a token), and there is
no telling which is which, so the whole family is revoked and both must log in.
Only a SHA-256 hash of each token is stored: the tokens are 256 random bits, so a
fast hash is enough, and a database dump yields nothing that can be replayed.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass

from cift.runtime.errors import Unauthenticated

TOKEN_BYTES = 32
_TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of 32 bytes, unpadded


@dataclass(frozen=True)
class IssuedRefreshToken:
    """A new token: `token` goes to the client once, `token_hash` is stored."""

    token: str
    token_hash: bytes
    family_id: str
    expires_at: float


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def issue_refresh_token(family_id: str, *, now: float, ttl_s: float) -> IssuedRefreshToken:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return IssuedRefreshToken(
        token=token,
        token_hash=hash_refresh_token(token),
        family_id=family_id,
        expires_at=now + ttl_s,
    )


def presented_token_hash(token: str) -> bytes:
    """Hash of a presented token after refusing anything that cannot be one of ours."""
    token = token.strip()
    if not token:
        raise Unauthenticated("refreshToken is required.", reason="REFRESH_TOKEN_INVALID")
    if not _TOKEN_FORMAT.match(token):
        raise Unauthenticated(
            "The refresh token is not valid; log in again.", reason="REFRESH_TOKEN_INVALID"
        )
    return hash_refresh_token(token)


@dataclass(frozen=True)
class StoredRefreshToken:
    token_id: str
    family_id: str
    user_id: str
    expires_at: float
    spent: bool
    revoked: bool


class RefreshVerdict(enum.Enum):
    ROTATE = "rotate"  # spend this one, issue its successor
    REUSED = "reused"  # revoke the whole family, refuse
    REFUSED = "refused"  # unknown, expired or already revoked: refuse, change nothing


def judge_refresh(stored: StoredRefreshToken | None, *, now: float) -> RefreshVerdict:
    if stored is None or stored.revoked:
        return RefreshVerdict.REFUSED
    if stored.spent:
        return RefreshVerdict.REUSED
    if now >= stored.expires_at:
        return RefreshVerdict.REFUSED
    return RefreshVerdict.ROTATE


def refusal(verdict: RefreshVerdict) -> Unauthenticated:
    """The error a refused refresh reports; REUSED tells the user why they were signed out."""
    if verdict is RefreshVerdict.REUSED:
        return Unauthenticated(
            "This refresh token was already used, so every session of this login was signed "
            "out to be safe; log in again.",
            reason="REFRESH_TOKEN_REUSED",
        )
    return Unauthenticated(
        "The refresh token is not valid or has expired; log in again.",
        reason="REFRESH_TOKEN_INVALID",
    )
