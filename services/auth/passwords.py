"""Password strength rules and bcrypt hashing.

The policy follows current guidance (length and a deny-list of well-known choices
rather than arbitrary composition rules), and every refusal says what to change.
Passwords are pre-hashed (SHA-256, base64) before bcrypt because bcrypt reads only
the first 72 bytes: without it, two long passphrases sharing a prefix would be the
same password. Nothing here logs or returns a password.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

from cift.runtime.errors import InvalidArgument

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 128
MIN_DISTINCT_CHARS = 5
MIN_BCRYPT_COST = 4  # bcrypt's own floor; only tests should go this low
MAX_BCRYPT_COST = 16
DEFAULT_BCRYPT_COST = 12

# The most common choices that pass the length rule; a credential-stuffing list
# tries these first.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "0123456789",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "abc1234567",
        "administrator",
        "changeme123",
        "iloveyou123",
        "letmein123",
        "password1!",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "qwerty1234",
        "qwerty12345",
        "qwertyuiop",
        "trustno1234",
        "welcome123",
    }
)


def check_password_strength(password: str, *, email: str = "") -> None:
    """Refuse a weak password with INVALID_ARGUMENT naming the rule it breaks."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidArgument(
            f"password is too short: use at least {MIN_PASSWORD_CHARS} characters."
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidArgument(f"password is too long: use at most {MAX_PASSWORD_CHARS} characters.")
    if password != password.strip():
        raise InvalidArgument("password must not start or end with whitespace.")
    if any(not ch.isprintable() for ch in password):
        raise InvalidArgument("password must not contain control characters.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        raise InvalidArgument("password is one of the most common passwords; choose another.")
    if len(set(lowered)) < MIN_DISTINCT_CHARS:
        raise InvalidArgument(
            f"password repeats too few characters: use at least {MIN_DISTINCT_CHARS} different ones."
        )
    if not any(ch.isalpha() for ch in password) or all(ch.isalpha() for ch in password):
        raise InvalidArgument("password must mix letters with digits, spaces or symbols.")
    local_part = email.partition("@")[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        raise InvalidArgument("password must not contain your email address.")


def check_bcrypt_cost(cost: int) -> int:
    if not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:
        raise ValueError(
            f"bcrypt cost must be between {MIN_BCRYPT_COST} and {MAX_BCRYPT_COST}, not {cost}"
        )
    return cost


def _prehash(password: str) -> bytes:
    # base64 so the bcrypt input never contains a NUL byte, which bcrypt would stop at.
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, *, cost: int) -> str:
    """A bcrypt hash (with its salt and cost) for storage; slow on purpose."""
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(check_bcrypt_cost(cost))).decode(
        "ascii"
    )


def verify_password(password: str, password_hash: str) -> bool:
    """Constant-time check of `password` against a stored hash; False for a malformed hash."""
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except ValueError:
        return False


def needs_rehash(password_hash: str, *, cost: int) -> bool:
    """True when a stored hash was made with another cost (rehash it at the next login)."""
    try:
        stored_cost = int(password_hash.split("$")[2])
    except (IndexError, ValueError):
        return True
    return stored_cost != cost
