"""Login throttling arithmetic: how long a client must wait before trying again.

Two counters, neither of which lets a stranger lock an owner out of their account:

- per (account, client address): after a few free failures, each further attempt
  from that address waits twice as long as the last (1 s, 2 s, 4 s, ... up to a
  cap), counted from the last failure. Guessing one password from one place becomes
  slow, while the owner signing in from anywhere else is not affected at all (the
  old per-account lock let anyone who knew an email lock its owner out for 15 min).
- per client address: a fixed budget of failures per window over all accounts, so
  one address cannot spray guesses across many accounts.

The counters live in Redis (`throttle_store.py`); this module only decides.
Throttled attempts are refused before bcrypt runs, so a flood costs the server
almost nothing. Redis keys carry a hash of the email, not the email itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import urllib.parse
from dataclasses import dataclass

from cift.runtime.errors import ResourceExhausted

KEY_PREFIX = "cift:auth:login-failures"
# 2**20 times any sane base is far past any cap; bounds the arithmetic.
_MAX_DOUBLINGS = 20


@dataclass(frozen=True)
class BackoffPolicy:
    """After `free_failures` failures, wait `base_s`, doubling per failure, at most `max_s`.

    Failures are forgotten `memory_s` after the last one.
    """

    free_failures: int
    base_s: float
    max_s: float
    memory_s: float

    def __post_init__(self) -> None:
        if self.free_failures < 1 or not 0 < self.base_s <= self.max_s or self.memory_s <= 0:
            raise ValueError(
                "a login backoff needs free_failures >= 1, 0 < base_s <= max_s and memory_s > 0"
            )

    def delay_s(self, failures: int) -> float:
        """The wait after the last of `failures` failures (0 while failures are free)."""
        if failures < self.free_failures:
            return 0.0
        doublings = min(failures - self.free_failures, _MAX_DOUBLINGS)
        return min(self.max_s, self.base_s * float(2**doublings))


@dataclass(frozen=True)
class ThrottlePolicy:
    """At most `max_failures` failed logins per `window_s` from one address."""

    max_failures: int
    window_s: float

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s <= 0:
            raise ValueError("a throttle needs max_failures >= 1 and a positive window")


def _whole_seconds(wait_s: float) -> float:
    # Retry-After is a whole number of seconds; rounding up never invites an early retry.
    return float(max(1, math.ceil(wait_s)))


def backoff_wait_s(policy: BackoffPolicy, failures: int, since_last_s: float) -> float | None:
    """Seconds until the next attempt is allowed, or None when it is allowed now."""
    remaining = policy.delay_s(failures) - max(since_last_s, 0.0)
    return _whole_seconds(remaining) if remaining > 0 else None


def retry_after_s(policy: ThrottlePolicy, failures: int, window_remaining_s: float) -> float | None:
    """Seconds until another attempt is allowed, or None when attempts are allowed now.

    A counter whose expiry Redis lost (`window_remaining_s` <= 0) is treated as
    lasting a whole window, never as "no wait".
    """
    if failures < policy.max_failures:
        return None
    remaining = window_remaining_s if window_remaining_s > 0 else policy.window_s
    return _whole_seconds(remaining)


def refuse_if_throttled(
    pair: tuple[BackoffPolicy, int, float], address: tuple[ThrottlePolicy, int, float]
) -> None:
    """RESOURCE_EXHAUSTED with the longer of the two waits when either says wait."""
    waits = [w for w in (backoff_wait_s(*pair), retry_after_s(*address)) if w is not None]
    if waits:
        wait = max(waits)
        raise ResourceExhausted(
            f"Too many failed logins; try again in {int(wait)} seconds.",
            retry_after_s=wait,
            reason="LOGIN_THROTTLED",
        )


def pair_key(email: str, client_address: str) -> str:
    """The (account, address) counter's key: a hash, so the email never sits in Redis."""
    digest = hashlib.sha256(f"{email}\x00{client_address}".encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:pair:{digest}"


def address_key(client_address: str) -> str:
    return f"{KEY_PREFIX}:address:{client_address}"


def client_address_from_peer(peer: str) -> str:
    """The address part of a gRPC peer string (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`).

    IPv6 clients are grouped by /64, since one host usually owns a whole /64 and
    could otherwise rotate addresses to dodge the per-address limit.
    """
    # grpc-core percent-encodes the brackets of IPv6 peers.
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
        return normalize_address(host)
    return peer or "unknown"


def normalize_address(text: str) -> str:
    """Canonical text of an address (IPv6 reduced to its /64); unparseable input kept as is."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text.strip()[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
