"""Helpers to run a real marketdata service in this process against the session's PostgreSQL, Redis and broker.

Each scenario gets its own database and its own ticks topic, so scenarios never see
each other's ticks (the broker is shared by the session). Calls authenticate with
a fixed test token: credential checking is the auth service's, tested there.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import asyncpg
import grpc

from cift.marketdata.v1 import marketdata_pb2_grpc
from cift.runtime.config import load
from cift.runtime.errors import Unauthenticated
from cift.runtime.identity import Identity
from cift.runtime.kafka import ensure_topics
from cift.runtime.server import ServiceContext, ServiceRuntime
from services.marketdata.__main__ import APP, SPEC, MarketDataApp
from services.marketdata.config import MarketDataConfig
from tests.consumers import session_ms

TOKEN = "marketdata-integration-test"
METADATA = (("authorization", f"Bearer {TOKEN}"),)
T = TypeVar("T")


class FixedTokenVerifier:
    async def verify_token(self, token: str) -> Identity:
        if token != TOKEN:
            raise Unauthenticated("Unknown test token.")
        return Identity("user-1", "account-1", frozenset({"read"}), token)

    async def verify_api_key(self, api_key: str) -> Identity:
        raise Unauthenticated("No API keys in this test.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Scenario:
    """A database and a topic of one's own; start and stop the service on them at will."""

    infra: Any
    database_url: str
    topic: str
    bars_topic: str

    def config(self, **overrides: Any) -> MarketDataConfig:
        settings: dict[str, Any] = {
            "service_name": "marketdata",
            "grpc_host": "127.0.0.1",
            "metrics_port": 0,
            "database_url": self.database_url,
            "redis_url": self.infra.redis_url,
            "kafka_bootstrap": self.infra.kafka_bootstrap,
            "kafka_session_timeout_ms": session_ms(self.infra),
            "drain_timeout_s": 1.0,
            "marketdata_ticks_topic": self.topic,
            "marketdata_bars_topic": self.bars_topic,
            "marketdata_ingest_group": f"ingest-{self.topic}",
            "marketdata_stream_heartbeat_s": 0.5,
        }
        settings.update(overrides)
        settings.setdefault("grpc_port", _free_port())
        return load(MarketDataConfig, {}, **settings)

    @asynccontextmanager
    async def running(self, **overrides: Any) -> AsyncIterator[RunningService]:
        config = self.config(**overrides)
        spec = replace(SPEC, verifier_factory=lambda ctx: FixedTokenVerifier())
        runtime = ServiceRuntime(spec, config)
        await runtime.start()
        app = replace(APP)  # a snapshot: the next service started overwrites APP
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
                yield RunningService(
                    config, runtime.context, app, marketdata_pb2_grpc.MarketDataServiceStub(channel)
                )
        finally:
            await runtime.drain()


@dataclass
class RunningService:
    config: MarketDataConfig
    context: ServiceContext[MarketDataConfig]
    app: MarketDataApp
    stub: marketdata_pb2_grpc.MarketDataServiceAsyncStub

    @property
    def pool(self) -> asyncpg.Pool:
        return self.context.pool


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 20.0) -> T:
    """Poll `check` until it returns something other than None (or fail after the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def new_scenario(infra: Any) -> AsyncIterator[Scenario]:
    name = f"md_it_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    topic = f"marketdata.ticks.test.{name}"
    bars_topic = f"marketdata.bars.test.{name}"
    await ensure_topics(infra.kafka_bootstrap, [topic, bars_topic], partitions=3)
    base, _, _ = infra.database_url.rpartition("/")
    try:
        yield Scenario(infra, f"{base}/{name}", topic, bars_topic)
    finally:
        admin = await asyncpg.connect(infra.database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
