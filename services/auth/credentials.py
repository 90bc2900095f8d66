"""Turning a presented credential (access JWT or API key) into an `Identity`, fast.

Used by the gateway check (every external request) and as the auth service's own
`CredentialVerifier`. What is cached, and why it does not weaken revocation:

- Access JWTs are verified against this process's own key ring; a verified token is
  remembered until its `exp`. Access tokens cannot be revoked before expiry anyway
  (that is why they live 15 minutes), so remembering them changes nothing.
- API keys are looked up by prefix and the row is kept for `auth_api_key_cache_s`
  (default 5 s); the secret's HMAC is still compared on every request. Revoking a
  key evicts it here at once and tells every other replica through Redis pub/sub,
  so a revoked key stops working within milliseconds; if a message is lost (Redis
  down), the cache lifetime bounds the delay.
- API-key callers get a short-lived identity JWT (`auth_identity_token_ttl_s`,
  default 60 s) for the upstream services; it is reused until half its life is
  gone. It never reaches the client: the gateway sets it on the upstream request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

import asyncpg
import redis.asyncio as aioredis

from cift.runtime.errors import Unauthenticated, Unavailable
from cift.runtime.identity import Identity
from cift.runtime.tokens import JwksCache, TokenVerifier
from services.auth import store
from services.auth.api_keys import StoredApiKey, authenticate_key, parse_api_key
from services.auth.config import AuthConfig
from services.auth.key_ring_store import LiveKeyRing
from services.auth.signing import TokenSubject, mint_access_token

log = logging.getLogger(__name__)

REVOCATION_CHANNEL = "cift:auth:api-key-revoked"
API_KEY_CACHE_SIZE = 10_000
IDENTITY_TOKEN_CACHE_SIZE = 10_000
LAST_USED_FLUSH_S = 30.0
# Unspecified pepper: keys are still 256-bit secrets, so the hash stays unforgeable;
# the label only separates this use of HMAC from any other.
_UNSET_PEPPER = b"cift-api-key-pepper-unset"


def pepper_bytes(config: AuthConfig) -> bytes:
    return (
        config.auth_api_key_pepper.encode("utf-8") if config.auth_api_key_pepper else _UNSET_PEPPER
    )


class Credentials:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis | None,
        keys: LiveKeyRing,
        config: AuthConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._keys = keys
        self._config = config
        self._clock = clock
        self._monotonic = monotonic
        self._pepper = pepper_bytes(config)

        async def own_jwks() -> list[dict[str, str]]:
            return keys.jwks()

        # The "fetch" reads this process's own ring in memory, so an unknown kid may
        # refetch at once (no rate limit needed): a rotation loaded from the
        # database is honoured on the very next request.
        self._tokens = TokenVerifier(
            JwksCache(own_jwks, max_age_s=1.0, min_refetch_interval_s=0.0, monotonic=monotonic),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            wall_clock=clock,
        )
        self._api_keys: OrderedDict[str, tuple[StoredApiKey | None, float]] = OrderedDict()
        self._identity_tokens: OrderedDict[TokenSubject, tuple[str, float]] = OrderedDict()
        self._used_key_ids: set[str] = set()

    @property
    def key_ring(self) -> LiveKeyRing:
        return self._keys

    # --- CredentialVerifier -------------------------------------------------------

    async def verify_token(self, token: str) -> Identity:
        return await self._tokens.verify(token)

    async def verify_api_key(self, api_key: str) -> Identity:
        presented = parse_api_key(api_key)
        stored = authenticate_key(presented, await self._lookup(presented.prefix), self._pepper)
        self._used_key_ids.add(stored.key_id)
        subject = TokenSubject(stored.user_id, stored.account_id, stored.scopes, stored.key_id)
        return Identity(
            user_id=stored.user_id,
            account_id=stored.account_id,
            scopes=stored.scopes,
            token=self.identity_token(subject),
            api_key_id=stored.key_id,
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        """The identity a request's headers prove, None when they carry no credential."""
        authorization = headers.get("authorization", "").strip()
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("The authorization header must be 'Bearer <access token>'.")
            return await self.verify_token(token.strip())
        api_key = headers.get("x-api-key", "").strip()
        if api_key:
            return await self.verify_api_key(api_key)
        return None

    # --- identity tokens ------------------------------------------------------------

    def identity_token(self, subject: TokenSubject) -> str:
        """A short-lived JWT for `subject`, reused until half of its lifetime is gone."""
        now = self._clock()
        ttl_s = self._config.auth_identity_token_ttl_s
        cache_key = subject
        cached = self._identity_tokens.get(cache_key)
        if cached is not None and cached[1] - now > ttl_s / 2:
            return cached[0]
        token = mint_access_token(
            self._keys.ring.active,
            subject,
            issuer=self._config.jwt_issuer,
            audience=self._config.jwt_audience,
            now=now,
            ttl_s=ttl_s,
        )
        self._identity_tokens[cache_key] = (token, int(now) + int(ttl_s))
        self._identity_tokens.move_to_end(cache_key)
        if len(self._identity_tokens) > IDENTITY_TOKEN_CACHE_SIZE:
            self._identity_tokens.popitem(last=False)
        return token

    # --- API key cache and revocation -------------------------------------------

    async def _lookup(self, prefix: str) -> StoredApiKey | None:
        now = self._monotonic()
        cached = self._api_keys.get(prefix)
        if cached is not None and now - cached[1] < self._config.auth_api_key_cache_s:
            return cached[0]
        try:
            stored = await store.api_key_by_prefix(self._pool, prefix)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            raise Unavailable("API keys cannot be checked right now; retry shortly.") from None
        # Unknown prefixes are cached too, so a flood of made-up keys costs one query per prefix.
        self._api_keys[prefix] = (stored, now)
        self._api_keys.move_to_end(prefix)
        if len(self._api_keys) > API_KEY_CACHE_SIZE:
            self._api_keys.popitem(last=False)
        return stored

    def forget_api_key(self, prefix: str) -> None:
        self._api_keys.pop(prefix, None)

    async def announce_revocation(self, prefix: str) -> None:
        """Evict here and tell the other replicas; a Redis failure leaves the cache-lifetime bound."""
        self.forget_api_key(prefix)
        if self._redis is None:
            return
        try:
            await self._redis.publish(REVOCATION_CHANNEL, prefix.encode("ascii"))
        except (OSError, aioredis.RedisError) as exc:
            log.warning("could not announce API key revocation: %s", exc)

    async def follow_revocations(self) -> None:
        """Evict keys other replicas revoke, for the life of the process."""
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(REVOCATION_CHANNEL)
                    # Anything cached before the subscription may have missed a message.
                    self._api_keys.clear()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.forget_api_key(bytes(message["data"]).decode("ascii", "replace"))
            except (OSError, aioredis.RedisError) as exc:
                log.warning("revocation feed interrupted: %s", exc)
                self._api_keys.clear()
                await asyncio.sleep(1.0)

    async def record_key_use_forever(self) -> None:
        """Write `last_used_at` in batches, so a busy key costs no write per request."""
        while True:
            await asyncio.sleep(LAST_USED_FLUSH_S)
            await self.flush_key_use()

    async def flush_key_use(self) -> None:
        used, self._used_key_ids = self._used_key_ids, set()
        if not used:
            return
        try:
            await store.touch_api_keys(self._pool, sorted(used))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not record API key use: %s", exc)
