"""Per-account order-rate buckets in Redis, one atomic Lua call per check.

The arithmetic is `token_bucket.TOKEN_BUCKET_LUA` (mirrored in Python there).
Every check costs one EVALSHA, and the calls share round trips: concurrent
unary checks are coalesced into one pipeline while the previous one is in
flight, and a batch of stream checks goes as one pipeline. Redis evaluates the
calls one after another, so checks of one account still take tokens in order.
"""

from __future__ import annotations

import asyncio
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
        self._waiting: list[tuple[str, RiskLimits, asyncio.Future[RateDecision]]] = []
        self._flushing = False

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

    async def take(self, account_id: str, limits: RiskLimits) -> RateDecision:
        """One token for one check, sharing a round trip with the checks arriving meanwhile."""
        future: asyncio.Future[RateDecision] = asyncio.get_running_loop().create_future()
        self._waiting.append((account_id, limits, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    decisions = await self.take_many(
                        [(account, limits) for account, limits, _ in batch]
                    )
                except Exception as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), decision in zip(batch, decisions, strict=True):
                    if not future.done():
                        future.set_result(decision)
        finally:
            self._flushing = False

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
