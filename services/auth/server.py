"""`cift.auth.v1.AuthService`: decode the request, apply the domain rules, encode the answer.

Secrets cross this module only on their way in (passwords, refresh tokens) or
out once (new tokens and API keys); none is logged or written to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.runtime.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from cift.runtime.identity import current_identity
from cift.runtime.money import format_decimal
from services.auth import store
from services.auth.api_keys import check_key_name, generate_api_key
from services.auth.config import AuthConfig
from services.auth.credentials import Credentials, pepper_bytes
from services.auth.emails import normalize_email
from services.auth.key_ring_store import LiveKeyRing
from services.auth.passwords import (
    check_password_strength,
    hash_password,
    needs_rehash,
    verify_password,
)
from services.auth.refresh_tokens import (
    RefreshVerdict,
    issue_refresh_token,
    judge_refresh,
    presented_token_hash,
    refusal,
)
from services.auth.scopes import check_grantable, parse_scopes, render_scopes, scopes_of_user
from services.auth.signing import TokenSubject, mint_access_token
from services.auth.throttle import client_address_from_peer, normalize_address
from services.auth.throttle_store import LoginThrottle

log = logging.getLogger(__name__)

# Set by the gateway (gateway/envoy.yaml.tmpl); clients cannot send it.
CLIENT_ADDRESS_HEADER = "x-cift-client-address"
MAX_DISPLAY_NAME_CHARS = 100
MAX_CREDENTIAL_CHARS = 1024
PREFIX_DRAWS = 5
_BAD_LOGIN = "The email or password is incorrect."


def _timestamp(epoch_s: float | None) -> Timestamp | None:
    if epoch_s is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(epoch_s * 1_000_000_000))
    return stamp


def _user_message(user: store.UserRow) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.user_id,
        email=user.email,
        display_name=user.display_name,
        account_id=user.account_id,
        scopes=render_scopes(scopes_of_user(is_admin=user.is_admin)),
        is_admin=user.is_admin,
        created_at=_timestamp(user.created_at),
    )


def _api_key_message(key: store.ApiKeyRow) -> auth_pb2.ApiKey:
    return auth_pb2.ApiKey(
        id=key.key_id,
        name=key.name,
        prefix=f"cift_{key.prefix}",
        scopes=render_scopes(key.scopes),
        created_at=_timestamp(key.created_at),
        last_used_at=_timestamp(key.last_used_at),
        revoked_at=_timestamp(key.revoked_at),
    )


def client_address(context: Any) -> str:
    """The caller's address as the gateway decided it, else (a direct call) the peer.

    Never x-forwarded-for: its entries are whatever the client wrote. The gateway
    drops any x-cift-* header a client sends and sets this one from the connection
    (or from its trusted proxies, CIFT_GATEWAY_TRUSTED_PROXY_HOPS); service ports
    are reachable by the gateway and the mesh only.
    """
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_ADDRESS_HEADER and isinstance(value, str) and value.strip():
            return normalize_address(value)
    return client_address_from_peer(context.peer() or "")


def check_display_name(name: str) -> str:
    cleaned = name.strip()
    if len(cleaned) > MAX_DISPLAY_NAME_CHARS:
        raise InvalidArgument(
            f"displayName is too long: at most {MAX_DISPLAY_NAME_CHARS} characters."
        )
    if not cleaned.isprintable():
        raise InvalidArgument("displayName must not contain control characters.")
    return cleaned


async def create_user(
    pool: asyncpg.Pool,
    config: AuthConfig,
    *,
    email: str,
    password: str,
    display_name: str,
    is_admin: bool,
    client_address: str = "",
    audit_event: str = "user_registered",
) -> store.UserRow:
    """Validate, hash (off the event loop: bcrypt is slow on purpose) and insert a user."""
    normalized = normalize_email(email)
    check_password_strength(password, email=normalized)
    name = check_display_name(display_name)
    password_hash = await asyncio.to_thread(hash_password, password, cost=config.auth_bcrypt_cost)
    async with pool.acquire() as conn, conn.transaction():
        user = await store.insert_user(
            conn,
            email=normalized,
            display_name=name,
            password_hash=password_hash,
            is_admin=is_admin,
        )
        await store.audit(
            conn,
            audit_event,
            user_id=user.user_id,
            client_address=client_address,
            detail={"email": normalized, "account_id": user.account_id, "is_admin": is_admin},
        )
    return user


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        config: AuthConfig,
        keys: LiveKeyRing,
        credentials: Credentials,
        throttle: LoginThrottle,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._config = config
        self._keys = keys
        self._credentials = credentials
        self._throttle = throttle
        self._clock = clock
        self._pepper = pepper_bytes(config)
        # Compared against when the email is unknown, so both failures take as long.
        self._decoy_hash = hash_password(uuid.uuid4().hex, cost=config.auth_bcrypt_cost)

    # --- sessions -------------------------------------------------------------------

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Any
    ) -> auth_pb2.RegisterResponse:
        user = await create_user(
            self._pool,
            self._config,
            email=request.email,
            password=request.password,
            display_name=request.display_name,
            is_admin=False,
            client_address=client_address(context),
        )
        return auth_pb2.RegisterResponse(
            user=_user_message(user), opening_cash=format_decimal(self._config.opening_cash)
        )

    async def Login(self, request: auth_pb2.LoginRequest, context: Any) -> auth_pb2.LoginResponse:
        if not request.email.strip() or not request.password:
            raise InvalidArgument("email and password are both required.")
        address = client_address(context)
        try:
            email = normalize_email(request.email)
        except InvalidArgument:
            # Same answer as a wrong password: the form of the email reveals nothing either.
            email = request.email.strip().lower()[:254]
        try:
            await self._throttle.refuse_if_throttled(email, address)
        except ResourceExhausted:
            await store.audit(
                self._pool, "login_throttled", client_address=address, detail={"email": email}
            )
            raise
        user = await store.user_by_email(self._pool, email)
        password = request.password[:MAX_CREDENTIAL_CHARS]
        stored_hash = user.password_hash if user is not None else self._decoy_hash
        valid = await asyncio.to_thread(verify_password, password, stored_hash)
        if user is None or not valid:
            await self._throttle.record_failure(email, address)
            await store.audit(
                self._pool,
                "login_failed",
                user_id=None if user is None else user.user_id,
                client_address=address,
                detail={"email": email},
            )
            raise Unauthenticated(_BAD_LOGIN, reason="BAD_CREDENTIALS")
        await self._throttle.clear(email, address)
        if needs_rehash(user.password_hash, cost=self._config.auth_bcrypt_cost):
            new_hash = await asyncio.to_thread(
                hash_password, password, cost=self._config.auth_bcrypt_cost
            )
            await store.set_password_hash(self._pool, user.user_id, new_hash)
        family_id = str(uuid.uuid4())
        access, refresh = await self._issue_pair(
            user, family_id, address=address, event="login_succeeded"
        )
        return auth_pb2.LoginResponse(**self._token_pair(access, refresh))

    def _token_pair(self, access: str, refresh: str) -> dict[str, Any]:
        """The fields Login and RefreshToken both answer with: the new pair and how long
        each of its tokens lives, so the two never report different lifetimes."""
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(self._config.auth_access_token_ttl_s),
            "token_type": "Bearer",
            "refresh_expires_in": int(self._config.auth_refresh_token_ttl_s),
        }

    async def _issue_pair(
        self, user: store.UserRow, family_id: str, *, address: str, event: str, conn: Any = None
    ) -> tuple[str, str]:
        now = self._clock()
        issued = issue_refresh_token(
            family_id, now=now, ttl_s=self._config.auth_refresh_token_ttl_s
        )

        async def write(connection: Any) -> None:
            await store.insert_refresh_token(
                connection,
                family_id=family_id,
                user_id=user.user_id,
                token_hash=issued.token_hash,
                expires_at=issued.expires_at,
            )
            await store.audit(
                connection,
                event,
                user_id=user.user_id,
                client_address=address,
                detail={"family_id": family_id},
            )

        if conn is None:
            async with self._pool.acquire() as connection, connection.transaction():
                await write(connection)
        else:
            await write(conn)
        access = mint_access_token(
            self._keys.ring.active,
            TokenSubject(user.user_id, user.account_id, scopes_of_user(is_admin=user.is_admin)),
            issuer=self._config.jwt_issuer,
            audience=self._config.jwt_audience,
            now=now,
            ttl_s=self._config.auth_access_token_ttl_s,
        )
        return access, issued.token

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Any
    ) -> auth_pb2.RefreshTokenResponse:
        token_hash = presented_token_hash(request.refresh_token[:MAX_CREDENTIAL_CHARS])
        address = client_address(context)
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await store.refresh_token_for_update(conn, token_hash)
            verdict = judge_refresh(stored, now=self._clock())
            if verdict is RefreshVerdict.ROTATE and stored is not None:
                user = await store.user_by_id(conn, stored.user_id)
                if user is None:
                    verdict = RefreshVerdict.REFUSED
                else:
                    await store.spend_refresh_token(conn, stored.token_id)
                    access, refresh = await self._issue_pair(
                        user, stored.family_id, address=address, event="token_refreshed", conn=conn
                    )
            elif verdict is RefreshVerdict.REUSED and stored is not None:
                revoked = await store.revoke_refresh_family(conn, stored.family_id)
                await store.audit(
                    conn,
                    "refresh_token_reuse_detected",
                    user_id=stored.user_id,
                    client_address=address,
                    detail={"family_id": stored.family_id, "tokens_revoked": revoked},
                )
        # Raised after the transaction so a reuse's family revocation is committed.
        if verdict is not RefreshVerdict.ROTATE:
            raise refusal(verdict)
        return auth_pb2.RefreshTokenResponse(**self._token_pair(access, refresh))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Any
    ) -> auth_pb2.LogoutResponse:
        identity = current_identity()
        token_hash = presented_token_hash(request.refresh_token[:MAX_CREDENTIAL_CHARS])
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await store.refresh_token_for_update(conn, token_hash)
            # Someone else's token (or an unknown one) is left alone; logging out twice is fine.
            if stored is not None and stored.user_id == identity.user_id:
                revoked = await store.revoke_refresh_family(conn, stored.family_id)
                await store.audit(
                    conn,
                    "logout",
                    user_id=identity.user_id,
                    client_address=client_address(context),
                    detail={"family_id": stored.family_id, "tokens_revoked": revoked},
                )
        return auth_pb2.LogoutResponse()

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Any) -> auth_pb2.GetMeResponse:
        identity = current_identity()
        user = await store.user_by_id(self._pool, identity.user_id)
        if user is None:
            raise NotFound("Your user no longer exists.")
        return auth_pb2.GetMeResponse(user=_user_message(user))

    # --- API keys ---------------------------------------------------------------------

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: Any
    ) -> auth_pb2.CreateApiKeyResponse:
        identity = current_identity()
        if identity.api_key_id:
            # Otherwise a leaked key could mint itself successors that outlive its
            # revocation; making keys needs the person (a password login).
            raise PermissionDenied(
                "An API key cannot create API keys: sign in with your password and create "
                "the key with that session.",
                reason="API_KEY_CANNOT_CREATE_KEYS",
            )
        name = check_key_name(request.name)
        scopes = parse_scopes(request.scopes)
        check_grantable(scopes, identity.scopes)
        async with self._pool.acquire() as conn, conn.transaction():
            for _ in range(PREFIX_DRAWS):
                new_key = generate_api_key(self._pepper)
                row = await store.insert_api_key(
                    conn,
                    user_id=identity.user_id,
                    name=name,
                    prefix=new_key.prefix,
                    secret_hash=new_key.secret_hash,
                    scopes=scopes,
                )
                if row is not None:
                    break
            else:
                raise RuntimeError("could not draw an unused API key prefix")
            await store.audit(
                conn,
                "api_key_created",
                user_id=identity.user_id,
                client_address=client_address(context),
                detail={
                    "key_id": row.key_id,
                    "prefix": row.prefix,
                    "scopes": render_scopes(scopes),
                },
            )
        # A made-up key with this prefix may have been cached as unknown.
        self._credentials.forget_api_key(row.prefix)
        return auth_pb2.CreateApiKeyResponse(api_key=_api_key_message(row), key=new_key.plaintext)

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: Any
    ) -> auth_pb2.ListApiKeysResponse:
        identity = current_identity()
        async with self._pool.acquire() as conn:
            rows = await store.list_api_keys(conn, identity.user_id)
        return auth_pb2.ListApiKeysResponse(api_keys=[_api_key_message(row) for row in rows])

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: Any
    ) -> auth_pb2.RevokeApiKeyResponse:
        identity = current_identity()
        if not request.key_id.strip():
            raise InvalidArgument("key_id is required.")
        async with self._pool.acquire() as conn, conn.transaction():
            row = await store.revoke_api_key(
                conn, key_id=request.key_id.strip(), user_id=identity.user_id
            )
            if row is None:
                raise NotFound(f"You have no API key with id {request.key_id.strip()!r}.")
            await store.audit(
                conn,
                "api_key_revoked",
                user_id=identity.user_id,
                client_address=client_address(context),
                detail={"key_id": row.key_id, "prefix": row.prefix},
            )
        await self._credentials.announce_revocation(row.prefix)
        return auth_pb2.RevokeApiKeyResponse(api_key=_api_key_message(row))

    # --- keys ---------------------------------------------------------------------------

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: Any
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**jwk) for jwk in self._keys.jwks()])
