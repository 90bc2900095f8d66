"""`python -m services.auth [serve|migrate|create-user|rotate-signing-key]`: wiring only."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import time
from pathlib import Path

import asyncpg

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.extauthz.v3 import external_auth_pb2, external_auth_pb2_grpc
from cift.runtime import db
from cift.runtime.errors import InvalidArgument
from cift.runtime.interceptors import PUBLIC, CredentialVerifier, RpcPolicy
from cift.runtime.server import Command, ServiceContext, ServiceSpec, run_service
from services.auth import store
from services.auth.check import GatewayCheck
from services.auth.config import DAY_S, AuthConfig
from services.auth.credentials import Credentials
from services.auth.key_ring_store import LiveKeyRing
from services.auth.server import AuthServicer, create_user
from services.auth.throttle import BackoffPolicy, ThrottlePolicy
from services.auth.throttle_store import LoginThrottle

log = logging.getLogger("services.auth")

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
CHECK_SERVICE = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"
SIGNED_IN = RpcPolicy()  # any verified caller; each handler acts on the caller's own user only

POLICIES = {
    f"/{AUTH_SERVICE}/Register": PUBLIC,
    f"/{AUTH_SERVICE}/Login": PUBLIC,
    f"/{AUTH_SERVICE}/RefreshToken": PUBLIC,
    f"/{AUTH_SERVICE}/GetJwks": PUBLIC,
    f"/{AUTH_SERVICE}/Logout": SIGNED_IN,
    f"/{AUTH_SERVICE}/GetMe": SIGNED_IN,
    f"/{AUTH_SERVICE}/CreateApiKey": SIGNED_IN,
    f"/{AUTH_SERVICE}/ListApiKeys": SIGNED_IN,
    f"/{AUTH_SERVICE}/RevokeApiKey": SIGNED_IN,
    # The gateway asks on behalf of its clients; the credential is inside the request.
    f"/{CHECK_SERVICE}/Check": PUBLIC,
}


def key_ring(pool: asyncpg.Pool, config: AuthConfig) -> LiveKeyRing:
    return LiveKeyRing(
        pool,
        secret=config.auth_signing_key_secret,
        rotate_after_s=config.auth_signing_key_rotate_s,
        max_token_ttl_s=max(config.auth_access_token_ttl_s, config.auth_identity_token_ttl_s),
    )


async def purge_refresh_tokens_forever(pool: asyncpg.Pool) -> None:
    """Expired refresh tokens are useless after a day (kept that long for reuse forensics)."""
    while True:
        try:
            async with pool.acquire() as conn:
                await store.purge_refresh_tokens(conn, expired_before=time.time() - DAY_S)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not purge expired refresh tokens: %s", exc)
        await asyncio.sleep(3600)


class AuthApp:
    """Holds what `setup` builds so the runtime's verifier factory can hand it out."""

    def __init__(self) -> None:
        self.credentials: Credentials | None = None

    async def setup(self, ctx: ServiceContext[AuthConfig]) -> None:
        config = ctx.config
        if not config.auth_signing_key_secret:
            log.warning(
                "CIFT_AUTH_SIGNING_KEY_SECRET is empty: signing keys are stored unencrypted"
            )
        if not config.auth_api_key_pepper:
            log.warning(
                "CIFT_AUTH_API_KEY_PEPPER is empty: API key hashes are not keyed by a server secret"
            )
        keys = key_ring(ctx.pool, config)
        await keys.load()
        credentials = Credentials(ctx.pool, ctx.redis, keys, config)
        throttle = LoginThrottle(
            ctx.redis,
            per_pair=BackoffPolicy(
                free_failures=config.auth_login_free_failures,
                base_s=config.auth_login_backoff_base_s,
                max_s=config.auth_login_backoff_max_s,
                memory_s=config.auth_login_failure_window_s,
            ),
            per_address=ThrottlePolicy(
                config.auth_login_max_failures_per_address, config.auth_login_failure_window_s
            ),
        )
        servicer = AuthServicer(ctx.pool, config, keys, credentials, throttle)
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, ctx.server)  # type: ignore[no-untyped-call]
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
            GatewayCheck(credentials, config.auth_public_paths), ctx.server
        )
        ctx.spawn("signing-key-reload", keys.reload_forever())
        ctx.spawn("api-key-revocations", credentials.follow_revocations())
        ctx.spawn("api-key-last-used", credentials.record_key_use_forever())
        ctx.spawn("refresh-token-purge", purge_refresh_tokens_forever(ctx.pool))
        ctx.on_shutdown(credentials.flush_key_use)
        self.credentials = credentials

    def verifier(self, ctx: ServiceContext[AuthConfig]) -> CredentialVerifier:
        assert self.credentials is not None, "setup builds the credentials first"
        return self.credentials


APP = AuthApp()

SPEC = ServiceSpec(
    name="auth",
    config_type=AuthConfig,
    service_names=(AUTH_SERVICE, CHECK_SERVICE),
    policies=POLICIES,
    setup=APP.setup,
    migrations_dir=MIGRATIONS,
    uses_redis=True,
    verifier_factory=APP.verifier,
)


def read_password() -> str:
    """The new user's password: prompted twice on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise InvalidArgument("The two passwords differ; nothing was created.")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def _create_user_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the user's email (their login)")
    parser.add_argument("--display-name", default="", help="name shown in the user's profile")
    parser.add_argument("--admin", action="store_true", help="grant the admin scope")


async def _create_user(config: AuthConfig, args: argparse.Namespace) -> int:
    password = read_password()
    if not password:
        raise InvalidArgument("A password is required (there is no default); nothing was created.")
    await db.migrate_dsn(config.database_url, "auth", db.load_migrations(MIGRATIONS))
    pool = await db.create_pool(config.database_url, "auth", min_size=1, max_size=2)
    try:
        user = await create_user(
            pool,
            config,
            email=args.email,
            password=password,
            display_name=args.display_name,
            is_admin=args.admin,
            audit_event="user_created_by_operator",
        )
    finally:
        await pool.close()
    role = "admin" if user.is_admin else "user"
    print(f"created {role} {user.email}: user id {user.user_id}, account id {user.account_id}")
    return 0


async def _rotate_signing_key(config: AuthConfig, args: argparse.Namespace) -> int:
    await db.migrate_dsn(config.database_url, "auth", db.load_migrations(MIGRATIONS))
    pool = await db.create_pool(config.database_url, "auth", min_size=1, max_size=2)
    try:
        ring = await key_ring(pool, config).load(force_rotation=True)
    finally:
        await pool.close()
    print(f"new signing key {ring.active.kid}; {len(ring.keys) - 1} older key(s) still published")
    return 0


COMMANDS: dict[str, Command[AuthConfig]] = {
    "create-user": Command(
        help="create a user (password read from stdin or prompted; no default)",
        add_arguments=_create_user_arguments,
        run=_create_user,
    ),
    "rotate-signing-key": Command(
        help="make a new signing key take over now (older keys stay published until their tokens expire)",
        add_arguments=lambda parser: None,
        run=_rotate_signing_key,
    ),
}

if __name__ == "__main__":
    sys.exit(run_service(SPEC, commands=COMMANDS))
