"""A real auth service (in this process, on a free port) against real PostgreSQL and Redis.

PostgreSQL and Redis come from the project's `infra` fixture (tests/conftest.py:
embedded ones, or those named by CIFT_DATABASE_URL / CIFT_REDIS_URL). The service
gets its own throwaway database, so runs never see each other's users.
"""

from __future__ import annotations

import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from cift.runtime.config import load
from cift.runtime.server import ServiceRuntime
from cift.stack.launcher import StackInfo
from services.auth.__main__ import APP, SPEC
from services.auth.config import AuthConfig

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(dsn: str, name: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
async def auth_database(infra: StackInfo) -> AsyncIterator[str]:
    admin_dsn = infra.database_url
    name = f"cift_auth_it_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield _with_database(admin_dsn, name)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass(frozen=True)
class RunningAuth:
    config: AuthConfig
    address: str
    pool: asyncpg.Pool


@pytest.fixture(scope="session")
async def auth_service(auth_database: str, infra: StackInfo) -> AsyncIterator[RunningAuth]:
    config = load(
        AuthConfig,
        {},
        service_name="auth",
        grpc_host="127.0.0.1",
        grpc_port=_free_port(),
        metrics_port=0,
        database_url=auth_database,
        redis_url=infra.redis_url,
        auth_bcrypt_cost=4,
        auth_signing_key_secret="integration-test-secret",
        auth_api_key_pepper="integration-test-pepper",
        auth_login_free_failures=3,
        auth_login_backoff_base_s=30.0,
        auth_login_max_failures_per_address=6,
        auth_login_failure_window_s=60.0,
        drain_timeout_s=1.0,
    )
    runtime = ServiceRuntime(SPEC, config)
    await runtime.start()
    assert APP.credentials is not None
    try:
        yield RunningAuth(config, f"127.0.0.1:{config.grpc_port}", runtime.context.pool)
    finally:
        await runtime.drain()


@pytest.fixture(scope="session")
async def channel(auth_service: RunningAuth) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(auth_service.address) as chan:
        yield chan
