"""Token-bucket arithmetic for the per-account order rate, mirrored by the Redis Lua script.

The bucket holds up to `burst` tokens and refills at `orders_per_second`; each
order takes one. The live state sits in Redis and is updated by `TOKEN_BUCKET_LUA`
atomically, one script call per check. This module is the same arithmetic in
Python, so the rule can be tested and reasoned about without Redis, and a test
runs both side by side.

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


# KEYS[1]: the account's bucket (a hash: t = micro-tokens, ts = last refill in µs).
# ARGV: rate in milli-tokens/s, burst in tokens, cost in tokens, and optionally the
# time in µs (tests pin it; otherwise the Redis server's clock, shared by every
# risk replica). Returns {allowed (1/0), retry_after_us}.
# Integer division is written a - a % b so doubles stay exact; numbers are written
# back with %d because Lua 5.1 would print large ones in exponent form.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst_units = tonumber(ARGV[2]) * 1000000
local cost_units = tonumber(ARGV[3]) * 1000000
local now
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local held = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(held[1])
local last = tonumber(held[2])
if tokens == nil or last == nil then
  tokens = burst_units
  last = now
end
local fill_num = burst_units * 1000 + rate - 1
local full_us = (fill_num - fill_num % rate) / rate
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
if elapsed > full_us then elapsed = full_us end
local added = elapsed * rate
added = (added - added % 1000) / 1000
tokens = tokens + added
if tokens > burst_units then tokens = burst_units end
if now > last then last = now end
local allowed = 0
local wait_us = 0
if tokens >= cost_units then
  tokens = tokens - cost_units
  allowed = 1
else
  local wait_num = (cost_units - tokens) * 1000 + rate - 1
  wait_us = (wait_num - wait_num % rate) / rate
end
redis.call('HSET', KEYS[1], 't', string.format('%d', tokens), 'ts', string.format('%d', last))
redis.call('PEXPIRE', KEYS[1], string.format('%d', (full_us - full_us % 1000) / 1000 + 1000))
return {allowed, wait_us}
"""
