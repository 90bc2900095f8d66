"""A real risk service (in this process, on a free port) against the session's PostgreSQL,
Redis and Kafka-protocol broker (the `infra` fixture).

Identity comes the way the gateway sends it (`CIFT_TRUST_GATEWAY_IDENTITY`), so
tests can act as a trader or an admin without the auth service. Instruments come
over gRPC from a market data server in this process that answers GetInstrument
for a fixed universe (the market data service's contract, not its code).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.risk.v1 import risk_pb2_grpc
from cift.runtime.config import load
from cift.runtime.kafka import EventProducer
from cift.runtime.server import ServiceRuntime
from services.risk.__main__ import SPEC
from services.risk.config import RiskConfig
from tests.consumers import session_ms

pytestmark = pytest.mark.integration


def listed(symbol: str, **fields: Any) -> marketdata_pb2.Instrument:
    """An instrument as market data lists one: a penny tick, one-share lots, tradable,
    shortable and active unless `fields` say otherwise."""
    terms: dict[str, Any] = {
        "tick_size": "0.01",
        "lot_size": "1",
        "tradable": True,
        "shortable": True,
        "status": marketdata_pb2.INSTRUMENT_STATUS_ACTIVE,
    }
    return marketdata_pb2.Instrument(symbol=symbol, **{**terms, **fields})


UNIVERSE = {
    "AAPL": listed("AAPL", fractionable=True),
    # Quoted only by the tick-topic test, so no other test sees its price.
    "QUOT": listed("QUOT"),
    "HALT": listed("HALT", status=marketdata_pb2.INSTRUMENT_STATUS_HALTED),
    "LOTS": listed("LOTS", tick_size="0.05", lot_size="100", shortable=False),
    # Delisted, though its tradable flag was left set.
    "GONE": listed("GONE", shortable=False, status=marketdata_pb2.INSTRUMENT_STATUS_INACTIVE),
    # Fractional orders go in steps of its minimum order size.
    "STEP": listed("STEP", min_order_size="0.001", fractionable=True),
}


class UniverseMarketData(marketdata_pb2_grpc.MarketDataServiceServicer):
    async def GetInstrument(
        self, request: marketdata_pb2.GetInstrumentRequest, context: Any
    ) -> marketdata_pb2.GetInstrumentResponse:
        instrument = UNIVERSE.get(request.symbol)
        if instrument is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.symbol} is not listed")
        return marketdata_pb2.GetInstrumentResponse(instrument=instrument)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningRisk:
    config: RiskConfig
    address: str
    pool: asyncpg.Pool
    redis: aioredis.Redis
    producer: EventProducer


def trader(account_id: str) -> tuple[tuple[str, str], ...]:
    return (
        ("x-cift-user-id", f"user-{account_id}"),
        ("x-cift-account-id", account_id),
        ("x-cift-scopes", "read trade"),
    )


ADMIN = (
    ("x-cift-user-id", "ops-admin"),
    ("x-cift-account-id", "ops"),
    ("x-cift-scopes", "read trade admin"),
)


@pytest.fixture(scope="session")
async def marketdata_address() -> AsyncIterator[str]:
    server = grpc.aio.server()
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(UniverseMarketData(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture(scope="session")
async def risk_service(infra: Any, marketdata_address: str) -> AsyncIterator[RunningRisk]:
    config = load(
        RiskConfig,
        {},
        service_name="risk",
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=0,
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_session_timeout_ms=session_ms(infra),
        marketdata_addr=marketdata_address,
        trust_gateway_identity=True,
        drain_timeout_s=1.0,
        risk_state_refresh_s=0.5,
    )
    runtime = ServiceRuntime(SPEC, config)
    await runtime.start()
    try:
        yield RunningRisk(
            config,
            f"127.0.0.1:{config.grpc_port}",
            runtime.context.pool,
            runtime.context.redis,
            runtime.context.producer,
        )
    finally:
        await runtime.drain()


@pytest.fixture(scope="session")
async def risk(risk_service: RunningRisk) -> AsyncIterator[risk_pb2_grpc.RiskServiceAsyncStub]:
    async with grpc.aio.insecure_channel(risk_service.address) as channel:
        yield risk_pb2_grpc.RiskServiceStub(channel)


@pytest.fixture
def account() -> str:
    """A fresh account per test, so buckets, limits and states never leak between tests."""
    return f"acct-{uuid.uuid4().hex[:12]}"


async def eventually(check: Any, timeout_s: float = 20.0, interval_s: float = 0.1) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval_s)
