"""API keys: `cift_<prefix>_<secret>`, shown once, stored only as a keyed hash.

The prefix is public (it is how a key is found and how a user tells keys apart in a
listing); the secret never leaves this module except inside the string returned at
creation. The stored hash is HMAC-SHA256 under a server-side pepper rather than
bcrypt on purpose: a slow hash protects guessable secrets, but these secrets are
256 random bits, so no hash speed makes guessing feasible, while the gateway must
check a key on every request in microseconds. The pepper (kept outside the
database) means a stolen table alone cannot even confirm a candidate key. Hashes
are compared with `hmac.compare_digest`, in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cift.runtime.errors import InvalidArgument, Unauthenticated

KEY_SCHEME = "cift"
PREFIX_BYTES = 5  # 8 base32 characters: lookup handle, collisions retried at insert
SECRET_BYTES = 32  # 256 bits
PREFIX_CHARS = 8
SECRET_CHARS = 52
MAX_NAME_CHARS = 100
# Domain separation: the pepper keys nothing else with this label.
_HASH_LABEL = b"cift-api-key-v1"

_KEY_FORMAT = re.compile(
    rf"^{KEY_SCHEME}_([a-z2-7]{{{PREFIX_CHARS}}})_([a-z2-7]{{{SECRET_CHARS}}})$"
)
_INVALID_KEY_MESSAGE = "The API key is not valid; create a new one if it was revoked."


def _base32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


@dataclass(frozen=True)
class NewApiKey:
    """A freshly made key: `plaintext` goes to the user once, the rest is stored."""

    prefix: str
    plaintext: str
    secret_hash: bytes


@dataclass(frozen=True)
class PresentedKey:
    """A key as a caller sent it, split into lookup prefix and secret."""

    prefix: str
    secret: str


def hash_secret(prefix: str, secret: str, pepper: bytes) -> bytes:
    # The prefix is inside the MAC so a secret is only valid under the prefix it was issued with.
    message = _HASH_LABEL + b"\x00" + prefix.encode("ascii") + b"\x00" + secret.encode("ascii")
    return hmac.new(pepper, message, hashlib.sha256).digest()


def generate_api_key(pepper: bytes) -> NewApiKey:
    prefix = _base32(secrets.token_bytes(PREFIX_BYTES))
    secret = _base32(secrets.token_bytes(SECRET_BYTES))
    return NewApiKey(
        prefix=prefix,
        plaintext=f"{KEY_SCHEME}_{prefix}_{secret}",
        secret_hash=hash_secret(prefix, secret, pepper),
    )


def parse_api_key(presented: str) -> PresentedKey:
    """Split a presented key; UNAUTHENTICATED when it cannot be one of ours."""
    match = _KEY_FORMAT.match(presented.strip())
    if match is None:
        raise Unauthenticated(_INVALID_KEY_MESSAGE, reason="API_KEY_INVALID")
    return PresentedKey(prefix=match.group(1), secret=match.group(2))


def secret_matches(presented: PresentedKey, stored_hash: bytes, pepper: bytes) -> bool:
    return hmac.compare_digest(hash_secret(presented.prefix, presented.secret, pepper), stored_hash)


def check_key_name(name: str) -> str:
    """A key's label for listings: required, printable, bounded."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidArgument("name is required: label the key so you can recognize it later.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidArgument(f"name is too long: at most {MAX_NAME_CHARS} characters.")
    if not cleaned.isprintable():
        raise InvalidArgument("name must not contain control characters.")
    return cleaned


@dataclass(frozen=True)
class StoredApiKey:
    """What the store knows about a key; enough to decide whether it admits a caller."""

    key_id: str
    prefix: str
    secret_hash: bytes
    user_id: str
    account_id: str
    scopes: frozenset[str]
    revoked: bool


def authenticate_key(
    presented: PresentedKey, stored: StoredApiKey | None, pepper: bytes
) -> StoredApiKey:
    """The key record the presented key proves possession of, or UNAUTHENTICATED.

    The hash is compared even when the record is revoked, so the answer's timing
    does not reveal which prefixes exist or were revoked.
    """
    if stored is None:
        # Same work as a real comparison.
        secret_matches(presented, bytes(32), pepper)
        raise Unauthenticated(_INVALID_KEY_MESSAGE, reason="API_KEY_INVALID")
    matches = secret_matches(presented, stored.secret_hash, pepper)
    if not matches or stored.revoked or stored.prefix != presented.prefix:
        raise Unauthenticated(_INVALID_KEY_MESSAGE, reason="API_KEY_INVALID")
    return stored
