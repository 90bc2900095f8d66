"""Which scopes a user holds and which scopes they may hand to an API key.

A credential can never carry more power than the person who made it: a key's
scopes must be a subset of its creator's, so only admins can mint admin keys.
"""

from __future__ import annotations

from collections.abc import Iterable

from cift.runtime.errors import InvalidArgument, PermissionDenied
from cift.runtime.identity import ALL_SCOPES, SCOPE_ADMIN, SCOPE_READ, SCOPE_TRADE

USER_SCOPES = frozenset({SCOPE_READ, SCOPE_TRADE})
ADMIN_SCOPES = frozenset({SCOPE_READ, SCOPE_TRADE, SCOPE_ADMIN})
# Canonical order for tokens and listings, so equal scope sets render identically.
SCOPE_ORDER = (SCOPE_READ, SCOPE_TRADE, SCOPE_ADMIN)


def scopes_of_user(*, is_admin: bool) -> frozenset[str]:
    return ADMIN_SCOPES if is_admin else USER_SCOPES


def parse_scopes(requested: Iterable[str]) -> frozenset[str]:
    """Validate scope names from a request; at least one, all known."""
    names = [name.strip().lower() for name in requested]
    if not names or not any(names):
        raise InvalidArgument(f"scopes are required: choose from {', '.join(SCOPE_ORDER)}.")
    unknown = sorted({name for name in names if name not in ALL_SCOPES})
    if unknown:
        raise InvalidArgument(
            f"unknown scope {', '.join(repr(n) for n in unknown)}: choose from {', '.join(SCOPE_ORDER)}."
        )
    return frozenset(names)


def check_grantable(requested: frozenset[str], holder_scopes: frozenset[str]) -> None:
    """Refuse to put a scope on a key that its creator does not hold."""
    missing = requested - holder_scopes
    if missing:
        raise PermissionDenied(
            f"You cannot create a key with scope {', '.join(render_scopes(missing))}: "
            "a key may only carry scopes you hold."
        )


def render_scopes(scopes: Iterable[str]) -> list[str]:
    present = set(scopes)
    return [name for name in SCOPE_ORDER if name in present]


def scope_claim(scopes: Iterable[str]) -> str:
    """The space-separated `scope` claim of a JWT (RFC 8693 style)."""
    return " ".join(render_scopes(scopes))
