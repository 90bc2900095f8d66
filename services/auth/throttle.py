"""Login throttling arithmetic: when a run of failed logins locks further attempts.

Failures are counted in fixed windows per account (the normalized email) and per
client address; the counters live in Redis (see store code), this module only
decides. Throttled attempts are refused before bcrypt runs, so a flood costs the
server almost nothing. Redis keys carry a hash of the email, not the email itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import urllib.parse
from dataclasses import dataclass

from cift.runtime.errors import ResourceExhausted

KEY_PREFIX = "cift:auth:login-failures"


@dataclass(frozen=True)
class ThrottlePolicy:
    """At most `max_failures` failed logins per `window_s` for one account or one address."""

    max_failures: int
    window_s: float

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s <= 0:
            raise ValueError("a throttle needs max_failures >= 1 and a positive window")


def retry_after_s(policy: ThrottlePolicy, failures: int, window_remaining_s: float) -> float | None:
    """Seconds until another attempt is allowed, or None when attempts are allowed now.

    A counter whose expiry Redis lost (`window_remaining_s` <= 0) is treated as
    lasting a whole window, never as "no wait".
    """
    if failures < policy.max_failures:
        return None
    remaining = window_remaining_s if window_remaining_s > 0 else policy.window_s
    return float(max(1, math.ceil(remaining)))


def refuse_if_throttled(
    account: tuple[ThrottlePolicy, int, float], address: tuple[ThrottlePolicy, int, float]
) -> None:
    """RESOURCE_EXHAUSTED with the longer of the two waits when either counter is full."""
    waits = [w for w in (retry_after_s(*account), retry_after_s(*address)) if w is not None]
    if waits:
        wait = max(waits)
        raise ResourceExhausted(
            f"Too many failed logins; try again in {int(wait)} seconds.",
            retry_after_s=wait,
            reason="LOGIN_THROTTLED",
        )


def account_key(email: str) -> str:
    digest = hashlib.sha256(email.encode("utf-8")).hexdigest()[:32]
    return f"{KEY_PREFIX}:account:{digest}"


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
