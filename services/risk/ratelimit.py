"""Per-account order-rate buckets in Redis, one atomic Lua call per check.

The arithmetic is `token_bucket.TOKEN_BUCKET_LUA` (mirrored in Python there).
A unary check costs one EVALSHA round trip; a batch of stream checks costs one
pipelined round trip for all of them. Redis evaluates the calls one after
another, so checks of one account in one batch still take tokens in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from services.risk.limits import RiskLimits
from services.risk.token_bucket import TOKEN_BUCKET_LUA, RateDecision, rate_milli

KEY_PREFIX = "cift:risk:bucket:"


class RedisRateLimiter:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._sha: str | None = None

    async def load(self) -> None:
        self._sha = str(await self._client.script_load(TOKEN_BUCKET_LUA))

    @staticmethod
    def _args(limits: RiskLimits, now_us: int | None) -> tuple[int, int, int, str]:
        return (
            rate_milli(limits.orders_per_second),
            limits.order_burst,
            1,
            "" if now_us is None else str(now_us),
        )

    async def take(
        self, account_id: str, limits: RiskLimits, now_us: int | None = None
    ) -> RateDecision:
        decisions = await self.take_many([(account_id, limits)], now_us)
        return decisions[0]

    async def take_many(
        self, checks: Sequence[tuple[str, RiskLimits]], now_us: int | None = None
    ) -> list[RateDecision]:
        """One token for each (account, limits), in order, in one round trip."""
        if not checks:
            return []
        if self._sha is None:
            await self.load()
        try:
            replies = await self._run(checks, now_us)
        except NoScriptError:
            # Redis restarted or flushed its script cache: load again, once.
            await self.load()
            replies = await self._run(checks, now_us)
        return [RateDecision(bool(int(allowed)), int(wait_us)) for allowed, wait_us in replies]

    async def _run(
        self, checks: Sequence[tuple[str, RiskLimits]], now_us: int | None
    ) -> list[list[int]]:
        assert self._sha is not None
        if len(checks) == 1:
            account_id, limits = checks[0]
            reply = await self._client.evalsha(
                self._sha, 1, KEY_PREFIX + account_id, *self._args(limits, now_us)
            )
            return [list(reply)]
        pipe = self._client.pipeline(transaction=False)
        for account_id, limits in checks:
            pipe.evalsha(self._sha, 1, KEY_PREFIX + account_id, *self._args(limits, now_us))
        results = await pipe.execute(raise_on_error=False)
        if any(isinstance(result, NoScriptError) for result in results):
            raise NoScriptError("NOSCRIPT")
        for result in results:
            if isinstance(result, Exception):
                raise result
        return [list(result) for result in results]
