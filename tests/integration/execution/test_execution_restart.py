"""Restarting the execution service: resting orders survive and still fill.

A second execution process runs against the stack's infrastructure and its auth,
risk and market data services, with a database of its own (and its own consumer
group for ticks), so it can be stopped and started without touching the stack's
execution process. It is started as `python -m services.execution`, exactly as
the launcher does, and stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.runtime.config import env_name
from tests.integration.execution.exec_stack import CENT, Mesh, eventually, price

pytestmark = pytest.mark.integration

D = Decimal
ROOT = Path(__file__).parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExecutionProcess:
    """One `python -m services.execution` child, restartable with the same settings."""

    def __init__(self, environ: dict[str, str], log: Path) -> None:
        self.environ = environ
        self.log = log
        self.address = f"127.0.0.1:{environ[env_name('grpc_port')]}"
        self.child: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.execution",
                cwd=ROOT,
                env=self.environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                assert self.child is not None and self.child.returncode is None, (
                    self.log.read_text()
                )
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                up: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
                return up

            await eventually(serving, timeout_s=60, interval_s=0.2)

    async def stop(self) -> int:
        child, self.child = self.child, None
        if child is None:
            return 0
        child.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise


@pytest.fixture
async def execution_process(mesh: Mesh, tmp_path: Path) -> AsyncIterator[ExecutionProcess]:
    name = f"exec_restart_{uuid.uuid4().hex[:8]}"
    await mesh.db.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(mesh.info.database_url)
    database_url = urlunsplit(parts._replace(path=f"/{name}"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    environ.update(mesh.info.env)
    environ.update(
        {
            env_name("service_name"): "execution",
            env_name("database_url"): database_url,
            env_name("grpc_host"): "127.0.0.1",
            env_name("grpc_port"): str(free_port()),
            env_name("metrics_port"): str(free_port()),
            env_name("fill_engine_group"): f"execution-restart-{uuid.uuid4().hex[:8]}",
            env_name("water_mark_flush_s"): "0.2",
            env_name("equity_snapshot_s"): "0.3",
            env_name("drain_timeout_s"): "2",
        }
    )
    process = ExecutionProcess(environ, tmp_path / "execution.log")
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
        await mesh.db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_resting_orders_survive_a_restart_and_still_fill(
    mesh: Mesh, execution_process: ExecutionProcess
) -> None:
    trader = await mesh.trader()
    async with grpc.aio.insecure_channel(execution_process.address) as channel:
        execution = execution_pb2_grpc.ExecutionServiceStub(channel)

        async def get(order_id: str) -> orders_pb2.Order:
            reply = await execution.GetOrder(
                execution_pb2.GetOrderRequest(order_id=order_id), metadata=trader.auth
            )
            return reply.order

        async def account() -> execution_pb2.Account:
            reply = await execution.GetAccount(
                execution_pb2.GetAccountRequest(), metadata=trader.auth
            )
            return reply.account

        opening = D((await account()).cash)
        quote = await mesh.quote(trader, "META")
        limit = price(quote.bid, "0.96")
        resting = (
            await execution.SubmitOrder(
                execution_pb2.SubmitOrderRequest(
                    symbol="META",
                    side=orders_pb2.ORDER_SIDE_BUY,
                    type=orders_pb2.ORDER_TYPE_LIMIT,
                    time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
                    qty="5",
                    limit_price=str(limit),
                ),
                metadata=trader.auth,
            )
        ).order
        trailing = (
            await execution.SubmitOrder(
                execution_pb2.SubmitOrderRequest(
                    symbol="META",
                    side=orders_pb2.ORDER_SIDE_BUY,
                    type=orders_pb2.ORDER_TYPE_TRAILING_STOP,
                    time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
                    qty="1",
                    trail_percent="10",
                ),
                metadata=trader.auth,
            )
        ).order

        # The buy trailing stop's low-water mark is saved once the first trade sets it.
        async def saved_mark() -> str:
            return (await get(trailing.id)).hwm

        mark_before = D(await eventually(saved_mark))

        # Portfolio history (the opening deposit, periodic snapshots, the live point):
        # resting orders change no equity, so every point is the opening cash.
        async def history() -> execution_pb2.GetPortfolioHistoryResponse | None:
            reply = await execution.GetPortfolioHistory(
                execution_pb2.GetPortfolioHistoryRequest(period="1D", timeframe="1Min"),
                metadata=trader.auth,
            )
            return reply if reply.equity else None

        points = await eventually(history)
        assert D(points.base_value) == opening
        assert {D(e) for e in points.equity} == {opening}
        assert {D(p) for p in points.profit_loss} == {D(0)}

        assert await execution_process.stop() == 0
        await execution_process.start()

        assert (await get(resting.id)).status == orders_pb2.ORDER_STATUS_ACCEPTED
        restarted = await get(trailing.id)
        assert restarted.status == orders_pb2.ORDER_STATUS_ACCEPTED
        assert D(restarted.hwm) <= mark_before  # a buy's low-water mark only falls

        # A quote whose ask reaches the limit, after the restart, fills the reloaded order.
        await mesh.inject_quote("META", limit - CENT, limit, await mesh.next_sequence(trader))

        async def filled() -> orders_pb2.Order | None:
            order = await get(resting.id)
            return order if order.status == orders_pb2.ORDER_STATUS_FILLED else None

        order = await eventually(filled)
        assert D(order.filled_avg_price) == limit
        assert D((await account()).cash) == opening - 5 * limit
        await execution.CancelAllOrders(
            execution_pb2.CancelAllOrdersRequest(), metadata=trader.auth
        )
        assert D((await account()).reserved_buying_power) == 0


async def test_database_of_the_restart_process_is_its_own(
    mesh: Mesh, execution_process: ExecutionProcess
) -> None:
    # The restart test's orders must never reach the stack's execution schema.
    parts = urlsplit(execution_process.environ[env_name("database_url")])
    assert parts.path != urlsplit(mesh.info.database_url).path
    connection = await asyncpg.connect(execution_process.environ[env_name("database_url")])
    try:
        assert await connection.fetchval("SELECT count(*) FROM execution.accounts") == 0
    finally:
        await connection.close()
