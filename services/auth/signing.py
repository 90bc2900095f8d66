"""Signing keys and the access tokens they sign.

The newest key signs; older keys stay published in the JWKS until every token they
signed has expired, so rotating never logs anybody out. Each kid is the key's RFC
7638 thumbprint. Private keys are only ever serialized through `seal_private_key`,
which encrypts them (AES-256-GCM under a key derived from the operator's secret)
when a secret is configured; a `SigningKey` never prints its private half.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from cift.runtime.identity import API_KEY_ID_CLAIM
from cift.runtime.tokens import ALGORITHM, jwk_thumbprint, public_jwk
from services.auth.scopes import scope_claim

DEFAULT_ACCESS_TOKEN_TTL_S = 15 * 60
# Rotated keys stay published this much longer than the longest token lifetime, to
# cover clock skew between auth and the verifying services.
PUBLICATION_MARGIN_S = 60.0

_SEALED_PREFIX = b"aesgcm1:"
_PLAIN_PREFIX = b"raw1:"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)
    created_at: float
    retired_at: float | None = None  # when a newer key took over signing

    def jwk(self) -> dict[str, str]:
        return public_jwk(self.kid, self.private_key.public_key())


def new_signing_key(*, now: float) -> SigningKey:
    private_key = Ed25519PrivateKey.generate()
    return SigningKey(
        kid=jwk_thumbprint(private_key.public_key()), private_key=private_key, created_at=now
    )


@dataclass(frozen=True)
class KeyRing:
    """All keys auth still knows, newest first; exactly one of them (the newest) signs."""

    keys: tuple[SigningKey, ...]

    @classmethod
    def of(cls, keys: Iterable[SigningKey]) -> KeyRing:
        ordered = tuple(sorted(keys, key=lambda k: k.created_at, reverse=True))
        if not ordered:
            raise ValueError("a key ring needs at least one key")
        if ordered[0].retired_at is not None:
            raise ValueError("the newest signing key is retired; rotate to a new one")
        return cls(ordered)

    @property
    def active(self) -> SigningKey:
        return self.keys[0]

    def rotate(self, new_key: SigningKey, *, now: float) -> KeyRing:
        """The ring after `new_key` takes over signing; the previous key is retired at `now`."""
        retired = tuple(
            k if k.retired_at is not None else SigningKey(k.kid, k.private_key, k.created_at, now)
            for k in self.keys
        )
        return KeyRing((new_key, *retired))

    def due_for_rotation(self, *, now: float, rotate_after_s: float) -> bool:
        return now - self.active.created_at >= rotate_after_s

    def is_published(self, key: SigningKey, *, now: float, max_token_ttl_s: float) -> bool:
        return (
            key.retired_at is None or now < key.retired_at + max_token_ttl_s + PUBLICATION_MARGIN_S
        )

    def published(self, *, now: float, max_token_ttl_s: float) -> list[SigningKey]:
        """Keys whose tokens may still be live: these make up the JWKS."""
        return [
            k for k in self.keys if self.is_published(k, now=now, max_token_ttl_s=max_token_ttl_s)
        ]

    def jwks(self, *, now: float, max_token_ttl_s: float) -> list[dict[str, str]]:
        return [k.jwk() for k in self.published(now=now, max_token_ttl_s=max_token_ttl_s)]


@dataclass(frozen=True)
class TokenSubject:
    """Whom a token speaks for."""

    user_id: str
    account_id: str
    scopes: frozenset[str]
    # The API key a token stands for (`akid` claim); empty for a password login.
    api_key_id: str = ""


def mint_access_token(
    key: SigningKey, subject: TokenSubject, *, issuer: str, audience: str, now: float, ttl_s: float
) -> str:
    """An EdDSA JWT with the claims of docs/DESIGN.md, signed by `key`."""
    issued_at = int(now)
    claims = {
        "sub": subject.user_id,
        "acct": subject.account_id,
        "scope": scope_claim(subject.scopes),
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(ttl_s),
        "jti": uuid.uuid4().hex,
    }
    if subject.api_key_id:
        claims[API_KEY_ID_CLAIM] = subject.api_key_id
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def _wrapping_key(secret: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"cift-auth-signing-key-v1"
    ).derive(secret.encode("utf-8"))


def seal_private_key(key: SigningKey, secret: str) -> bytes:
    """Serialize the private key for storage, encrypted when `secret` is non-empty.

    The kid is authenticated data, so a sealed key copied onto another key's row
    fails to open.
    """
    raw = key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    if not secret:
        return _PLAIN_PREFIX + raw
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_wrapping_key(secret)).encrypt(nonce, raw, key.kid.encode("ascii"))
    return _SEALED_PREFIX + nonce + sealed


def open_private_key(kid: str, sealed: bytes, secret: str) -> Ed25519PrivateKey:
    """Inverse of `seal_private_key`; ValueError names the cause without revealing key material."""
    if sealed.startswith(_SEALED_PREFIX):
        if not secret:
            raise ValueError(
                f"signing key {kid} is encrypted but no signing-key secret is configured"
            )
        body = sealed[len(_SEALED_PREFIX) :]
        try:
            raw = AESGCM(_wrapping_key(secret)).decrypt(
                body[:_NONCE_BYTES], body[_NONCE_BYTES:], kid.encode("ascii")
            )
        except InvalidTag:
            raise ValueError(
                f"signing key {kid} cannot be decrypted with the configured secret"
            ) from None
    elif sealed.startswith(_PLAIN_PREFIX):
        raw = sealed[len(_PLAIN_PREFIX) :]
    else:
        raise ValueError(f"signing key {kid} is stored in an unknown format")
    private_key = Ed25519PrivateKey.from_private_bytes(raw)
    if jwk_thumbprint(private_key.public_key()) != kid:
        raise ValueError(f"signing key {kid} does not match its kid")
    return private_key
