"""Who is calling: the identity every RPC handler reads, and the scope rules.

The interceptor chain verifies the caller's credential and stores the resulting
`Identity` in a context variable for the duration of one RPC; handlers read it
with `current_identity()`. It must never be built from unverified client input.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cift.runtime.errors import PermissionDenied, Unauthenticated

SCOPE_READ = "read"
SCOPE_TRADE = "trade"
SCOPE_ADMIN = "admin"
ALL_SCOPES = frozenset({SCOPE_READ, SCOPE_TRADE, SCOPE_ADMIN})

# Metadata keys of the gateway-set identity (always lower case in gRPC metadata).
IDENTITY_TOKEN_HEADER = "x-cift-identity"
USER_ID_HEADER = "x-cift-user-id"
ACCOUNT_ID_HEADER = "x-cift-account-id"
SCOPES_HEADER = "x-cift-scopes"
API_KEY_ID_HEADER = "x-cift-api-key-id"
GATEWAY_HEADERS = (
    IDENTITY_TOKEN_HEADER,
    USER_ID_HEADER,
    ACCOUNT_ID_HEADER,
    SCOPES_HEADER,
    API_KEY_ID_HEADER,
)
# The `akid` claim of a token minted for an API-key caller: which key it stands for.
API_KEY_ID_CLAIM = "akid"


@dataclass(frozen=True)
class Identity:
    """A verified caller: a user acting on one account with some scopes."""

    user_id: str
    account_id: str
    scopes: frozenset[str]
    token: str = ""  # the verified credential, forwarded on calls made for this user
    # Set when the caller signed in with an API key (its id), empty for a password login:
    # some acts (making API keys) need the person, not a key they handed out.
    api_key_id: str = ""

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes

    def require_scope(self, scope: str) -> None:
        # admin implies every other scope: operators act on any account.
        if scope not in self.scopes and not self.is_admin:
            raise PermissionDenied(
                f"This call needs the '{scope}' scope, which your credential lacks."
            )

    def require_account(self, account_id: str) -> None:
        """Refuse access to another account's data unless the caller is an admin."""
        if account_id != self.account_id and not self.is_admin:
            raise PermissionDenied("You may only act on your own account.")


_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "cift_identity", default=None
)


def current_identity() -> Identity:
    """The verified caller of the RPC being served; UNAUTHENTICATED if there is none."""
    identity = _current.get()
    if identity is None:
        raise Unauthenticated(
            "This call needs a credential: send 'authorization: Bearer <token>' or 'x-api-key'."
        )
    return identity


def maybe_identity() -> Identity | None:
    """The verified caller, or None on public RPCs called without a credential."""
    return _current.get()


def bind_identity(identity: Identity | None) -> None:
    """Bind `identity` for the rest of the current task: the interceptor's per-RPC binding.

    grpc.aio serves each RPC in its own task, so the binding ends with the RPC;
    there is no reset because a cancelled stream is closed from another context.
    """
    _current.set(identity)


@contextmanager
def acting_as(identity: Identity | None) -> Iterator[None]:
    """Bind `identity` for a block (tests, and code acting for a user outside an RPC)."""
    token = _current.set(identity)
    try:
        yield
    finally:
        _current.reset(token)
