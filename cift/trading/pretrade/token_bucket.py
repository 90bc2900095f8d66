"""Token-bucket arithmetic for the per-account order rate, mirrored by the Redis Lua script.

The bucket holds up to `burst` tokens and refills at `orders_per_second`; each
order takes one. The live state sits in Redis and is updated atomically by the
risk service's Lua script (`services/risk/ratelimit.py`), one call per check. This
module is the same arithmetic in Python, so the rule can be tested and reasoned
about without Redis, the backtest can apply it, and a test runs both side by side.

Everything is in integers so Lua (whose numbers are doubles) and Python agree to
the unit: tokens are counted in micro-tokens, time in microseconds, the refill
rate in milli-tokens per second. All values stay far below 2**53.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.runtime.errors import InvalidArgument

UNITS_PER_TOKEN = 1_000_000
US_PER_S = 1_000_000
MAX_BURST = 1_000_000


@dataclass(frozen=True, slots=True)
class BucketState:
    tokens_units: int
    ts_us: int


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_us: int = 0

    @property
    def retry_after_s(self) -> Decimal:
        return Decimal(self.retry_after_us) / US_PER_S


def rate_milli(orders_per_second: Decimal) -> int:
    """The refill rate as an integer the script can use exactly (at most 3 decimals)."""
    scaled = orders_per_second * 1000
    if scaled <= 0 or scaled != scaled.to_integral_value():
        raise InvalidArgument(
            f"orders_per_second must be positive with at most 3 decimals (got {orders_per_second})."
        )
    return int(scaled)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def full_refill_us(rate_milli_tokens: int, burst: int) -> int:
    """Microseconds an empty bucket needs to fill; waiting longer adds nothing."""
    return _ceil_div(burst * UNITS_PER_TOKEN * 1000, rate_milli_tokens)


def take(
    state: BucketState | None, now_us: int, rate_milli_tokens: int, burst: int, cost: int = 1
) -> tuple[BucketState, RateDecision]:
    """Refill for the time elapsed, then take `cost` tokens if they are there.

    A missing bucket starts full, so a quiet account may send `burst` orders at once.
    A clock that steps backwards never mints tokens.
    """
    if not 1 <= burst <= MAX_BURST or rate_milli_tokens <= 0 or cost < 1:
        raise InvalidArgument(
            "A rate limit needs a positive rate and a burst between 1 and 1,000,000."
        )
    burst_units = burst * UNITS_PER_TOKEN
    cost_units = cost * UNITS_PER_TOKEN
    if state is None:
        tokens, last_us = burst_units, now_us
    else:
        tokens, last_us = state.tokens_units, state.ts_us
    elapsed_us = min(max(0, now_us - last_us), full_refill_us(rate_milli_tokens, burst))
    tokens = min(burst_units, tokens + elapsed_us * rate_milli_tokens // 1000)
    stamp = max(now_us, last_us)
    if tokens >= cost_units:
        return BucketState(tokens - cost_units, stamp), RateDecision(True)
    wait_us = _ceil_div((cost_units - tokens) * 1000, rate_milli_tokens)
    return BucketState(tokens, stamp), RateDecision(False, wait_us)
