"""Per-account order-rate buckets in Redis, one atomic Lua call per check.

The arithmetic is `TOKEN_BUCKET_LUA` below, mirrored in Python by the pure core's
`cift/trading/pretrade/token_bucket.py`.
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

from cift.trading.pretrade.limits import RiskLimits
from cift.trading.pretrade.token_bucket import RateDecision, rate_milli

KEY_PREFIX = "cift:risk:bucket:"

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
