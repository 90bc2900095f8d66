"""SQL of the auth schema, and nothing else.

Functions take a connection (callers own the transaction) and speak in the plain
values of the domain modules; timestamps cross this boundary as epoch seconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from cift.runtime.errors import AlreadyExists
from services.auth.api_keys import StoredApiKey
from services.auth.refresh_tokens import StoredRefreshToken


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True)
class UserRow:
    user_id: str
    email: str
    display_name: str
    password_hash: str
    account_id: str
    is_admin: bool
    created_at: float


def _user(row: asyncpg.Record) -> UserRow:
    return UserRow(
        user_id=str(row["id"]),
        email=row["email"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        account_id=str(row["account_id"]),
        is_admin=row["is_admin"],
        created_at=row["created_at"].timestamp(),
    )


async def insert_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    display_name: str,
    password_hash: str,
    is_admin: bool,
) -> UserRow:
    """Create a user and allocate their account id; ALREADY_EXISTS when the email is taken."""
    row = await conn.fetchrow(
        """INSERT INTO users (id, email, display_name, password_hash, account_id, is_admin)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (email) DO NOTHING
           RETURNING *""",
        uuid.uuid4(),
        email,
        display_name,
        password_hash,
        uuid.uuid4(),
        is_admin,
    )
    if row is None:
        raise AlreadyExists("An account with this email already exists; log in instead.")
    return _user(row)


async def user_by_email(conn: asyncpg.Connection, email: str) -> UserRow | None:
    row = await conn.fetchrow("SELECT * FROM users WHERE email = $1", email)
    return None if row is None else _user(row)


async def user_by_id(conn: asyncpg.Connection, user_id: str) -> UserRow | None:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", key)
    return None if row is None else _user(row)


async def set_password_hash(conn: asyncpg.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), password_hash
    )


async def insert_refresh_token(
    conn: asyncpg.Connection, *, family_id: str, user_id: str, token_hash: bytes, expires_at: float
) -> None:
    await conn.execute(
        """INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        uuid.uuid4(),
        uuid.UUID(family_id),
        uuid.UUID(user_id),
        token_hash,
        _ts(expires_at),
    )


async def refresh_token_for_update(
    conn: asyncpg.Connection, token_hash: bytes
) -> StoredRefreshToken | None:
    """The token's row, locked until the transaction ends so two refreshes serialize."""
    row = await conn.fetchrow(
        """SELECT id, family_id, user_id, expires_at, spent_at, revoked_at
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE""",
        token_hash,
    )
    if row is None:
        return None
    return StoredRefreshToken(
        token_id=str(row["id"]),
        family_id=str(row["family_id"]),
        user_id=str(row["user_id"]),
        expires_at=row["expires_at"].timestamp(),
        spent=row["spent_at"] is not None,
        revoked=row["revoked_at"] is not None,
    )


async def spend_refresh_token(conn: asyncpg.Connection, token_id: str) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET spent_at = now() WHERE id = $1", uuid.UUID(token_id)
    )


async def revoke_refresh_family(conn: asyncpg.Connection, family_id: str) -> int:
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        uuid.UUID(family_id),
    )
    return int(status.split()[-1])


async def purge_refresh_tokens(conn: asyncpg.Connection, *, expired_before: float) -> int:
    status = await conn.execute(
        "DELETE FROM refresh_tokens WHERE expires_at < $1", _ts(expired_before)
    )
    return int(status.split()[-1])


@dataclass(frozen=True)
class ApiKeyRow:
    key_id: str
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def _api_key(row: asyncpg.Record) -> ApiKeyRow:
    return ApiKeyRow(
        key_id=str(row["id"]),
        name=row["name"],
        prefix=row["prefix"],
        scopes=frozenset(row["scopes"]),
        created_at=row["created_at"].timestamp(),
        last_used_at=_epoch(row["last_used_at"]),
        revoked_at=_epoch(row["revoked_at"]),
    )


async def insert_api_key(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    name: str,
    prefix: str,
    secret_hash: bytes,
    scopes: frozenset[str],
) -> ApiKeyRow | None:
    """The new key's row, or None when the random prefix collided (the caller draws again)."""
    row = await conn.fetchrow(
        """INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, scopes)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (prefix) DO NOTHING
           RETURNING *""",
        uuid.uuid4(),
        uuid.UUID(user_id),
        name,
        prefix,
        secret_hash,
        sorted(scopes),
    )
    return None if row is None else _api_key(row)


async def api_key_by_prefix(
    conn: asyncpg.Connection | asyncpg.Pool, prefix: str
) -> StoredApiKey | None:
    row = await conn.fetchrow(
        """SELECT k.id, k.prefix, k.secret_hash, k.user_id, u.account_id, k.scopes, k.revoked_at
             FROM api_keys k JOIN users u ON u.id = k.user_id
            WHERE k.prefix = $1""",
        prefix,
    )
    if row is None:
        return None
    return StoredApiKey(
        key_id=str(row["id"]),
        prefix=row["prefix"],
        secret_hash=bytes(row["secret_hash"]),
        user_id=str(row["user_id"]),
        account_id=str(row["account_id"]),
        scopes=frozenset(row["scopes"]),
        revoked=row["revoked_at"] is not None,
    )


async def list_api_keys(conn: asyncpg.Connection, user_id: str) -> list[ApiKeyRow]:
    rows = await conn.fetch(
        "SELECT * FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id", uuid.UUID(user_id)
    )
    return [_api_key(row) for row in rows]


async def revoke_api_key(
    conn: asyncpg.Connection, *, key_id: str, user_id: str
) -> ApiKeyRow | None:
    """Revoke the user's key (a revoked key keeps its first revocation time); None if not theirs."""
    try:
        key = uuid.UUID(key_id)
    except ValueError:
        return None
    row = await conn.fetchrow(
        """UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE id = $1 AND user_id = $2
        RETURNING *""",
        key,
        uuid.UUID(user_id),
    )
    return None if row is None else _api_key(row)


async def touch_api_keys(conn: asyncpg.Connection | asyncpg.Pool, key_ids: list[str]) -> None:
    await conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::uuid[])",
        [uuid.UUID(k) for k in key_ids],
    )


@dataclass(frozen=True)
class SigningKeyRow:
    kid: str
    sealed_private_key: bytes
    created_at: float
    retired_at: float | None


async def lock_signing_keys(conn: asyncpg.Connection) -> None:
    """Serialize key creation and rotation across replicas for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cift-auth-signing-keys'))")


async def signing_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[SigningKeyRow]:
    rows = await conn.fetch("SELECT * FROM signing_keys ORDER BY created_at DESC")
    return [
        SigningKeyRow(
            kid=row["kid"],
            sealed_private_key=bytes(row["private_key"]),
            created_at=row["created_at"].timestamp(),
            retired_at=_epoch(row["retired_at"]),
        )
        for row in rows
    ]


async def insert_signing_key(
    conn: asyncpg.Connection, *, kid: str, sealed_private_key: bytes, created_at: float
) -> None:
    await conn.execute(
        "INSERT INTO signing_keys (kid, private_key, created_at) VALUES ($1, $2, $3)",
        kid,
        sealed_private_key,
        _ts(created_at),
    )


async def retire_signing_keys(
    conn: asyncpg.Connection, *, except_kid: str, retired_at: float
) -> None:
    await conn.execute(
        "UPDATE signing_keys SET retired_at = $2 WHERE kid <> $1 AND retired_at IS NULL",
        except_kid,
        _ts(retired_at),
    )


async def delete_signing_keys(conn: asyncpg.Connection, kids: list[str]) -> None:
    await conn.execute("DELETE FROM signing_keys WHERE kid = ANY($1::text[])", kids)


async def audit(
    conn: asyncpg.Connection | asyncpg.Pool,
    event: str,
    *,
    user_id: str | None = None,
    client_address: str = "",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append to the audit log (never a secret: no passwords, tokens or keys in `detail`)."""
    await conn.execute(
        "INSERT INTO audit_log (event, user_id, client_address, detail) VALUES ($1, $2, $3, $4::jsonb)",
        event,
        None if user_id is None else uuid.UUID(user_id),
        client_address,
        json.dumps(dict(detail or {}), sort_keys=True),
    )


@dataclass(frozen=True)
class AuditEntry:
    event: str
    user_id: str | None
    client_address: str
    detail: dict[str, Any]


async def audit_entries(
    conn: asyncpg.Connection | asyncpg.Pool, *, limit: int = 100
) -> list[AuditEntry]:
    """The most recent audit entries, newest first (operators and tests read these)."""
    rows = await conn.fetch(
        "SELECT event, user_id, client_address, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        limit,
    )
    return [
        AuditEntry(
            event=row["event"],
            user_id=None if row["user_id"] is None else str(row["user_id"]),
            client_address=row["client_address"],
            detail=json.loads(row["detail"]),
        )
        for row in rows
    ]
