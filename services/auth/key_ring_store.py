"""The live signing-key ring: loaded from the auth schema, created and rotated there.

Every replica reloads the ring periodically, so a rotation made by one replica is
published by all of them within `reload_interval_s`; tokens signed meanwhile by
the old key stay valid because retired keys remain in the JWKS. Creation and
rotation run under an advisory lock, so replicas starting together make one key.
Private keys are sealed before they reach SQL and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg

from services.auth import store
from services.auth.signing import (
    KeyRing,
    SigningKey,
    new_signing_key,
    open_private_key,
    seal_private_key,
)

log = logging.getLogger(__name__)


class LiveKeyRing:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        secret: str,
        rotate_after_s: float,
        max_token_ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._secret = secret
        self._rotate_after_s = rotate_after_s
        self._max_token_ttl_s = max_token_ttl_s
        self._clock = clock
        self._ring: KeyRing | None = None

    @property
    def ring(self) -> KeyRing:
        if self._ring is None:
            raise RuntimeError("signing keys are not loaded yet")
        return self._ring

    def jwks(self) -> list[dict[str, str]]:
        return self.ring.jwks(now=self._clock(), max_token_ttl_s=self._max_token_ttl_s)

    async def _read(self, conn: asyncpg.Connection) -> list[SigningKey]:
        return [
            SigningKey(
                kid=row.kid,
                private_key=open_private_key(row.kid, row.sealed_private_key, self._secret),
                created_at=row.created_at,
                retired_at=row.retired_at,
            )
            for row in await store.signing_keys(conn)
        ]

    async def load(self, *, force_rotation: bool = False) -> KeyRing:
        """Read the ring, first making a key if there is none or the active one is due (or forced)."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            await store.lock_signing_keys(conn)
            keys = await self._read(conn)
            if (
                force_rotation
                or not keys
                or keys[0].retired_at is not None
                or KeyRing.of(keys).due_for_rotation(now=now, rotate_after_s=self._rotate_after_s)
            ):
                new_key = new_signing_key(now=now)
                await store.insert_signing_key(
                    conn,
                    kid=new_key.kid,
                    sealed_private_key=seal_private_key(new_key, self._secret),
                    created_at=now,
                )
                await store.retire_signing_keys(conn, except_kid=new_key.kid, retired_at=now)
                await store.audit(conn, "signing_key_created", detail={"kid": new_key.kid})
                log.info("new signing key", extra={"kid": new_key.kid})
                keys = await self._read(conn)
            ring = KeyRing.of(keys)
            ttl = self._max_token_ttl_s
            withdrawn = [
                k.kid for k in ring.keys if not ring.is_published(k, now=now, max_token_ttl_s=ttl)
            ]
            if withdrawn:
                await store.delete_signing_keys(conn, withdrawn)
                ring = KeyRing.of(k for k in ring.keys if k.kid not in withdrawn)
        self._ring = ring
        return ring

    async def reload_forever(self, interval_s: float = 60.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.load()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("could not reload signing keys: %s", exc)
