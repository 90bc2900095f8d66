"""Restarting the execution service: resting orders survive and still fill.

A second execution process runs against the stack's infrastructure and its auth,
risk and market data services, with a database of its own (and its own consumer
group for ticks), so it can be stopped and started without touching the stack's
execution process. It is started as `python -m services.execution`, exactly as
the launcher does, and stopped with SIGTERM.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.runtime.config import env_name
from tests.integration.execution.exec_stack import CENT, Mesh, eventually, price
from tests.integration.execution.processes import ServiceProcess, own_database, service_environ

pytestmark = pytest.mark.integration

D = Decimal


@pytest.fixture
async def execution_process(mesh: Mesh, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    async with own_database(mesh, "exec_restart") as database_url:
        settings = {
            "fill_engine_group": f"execution-restart-{uuid.uuid4().hex[:8]}",
            "water_mark_flush_s": "0.2",
            "equity_snapshot_s": "0.3",
        }
        environ = service_environ(mesh, "execution", database_url, settings)
        process = ServiceProcess(environ, tmp_path / "execution.log")
        await process.start()
        try:
            yield process
        finally:
            await process.stop()


async def test_resting_orders_survive_a_restart_and_still_fill(
    mesh: Mesh, execution_process: ServiceProcess
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
        async def filled() -> orders_pb2.Order | None:
            order = await get(resting.id)
            return order if order.status == orders_pb2.ORDER_STATUS_FILLED else None

        order, _ = await mesh.quote_until(trader, "META", limit - CENT, limit, filled)
        assert D(order.filled_avg_price) == limit
        assert D((await account()).cash) == opening - 5 * limit
        await execution.CancelAllOrders(
            execution_pb2.CancelAllOrdersRequest(), metadata=trader.auth
        )
        assert D((await account()).reserved_buying_power) == 0


async def test_database_of_the_restart_process_is_its_own(
    mesh: Mesh, execution_process: ServiceProcess
) -> None:
    # The restart test's orders must never reach the stack's execution schema.
    parts = urlsplit(execution_process.environ[env_name("database_url")])
    assert parts.path != urlsplit(mesh.info.database_url).path
    connection = await asyncpg.connect(execution_process.environ[env_name("database_url")])
    try:
        assert await connection.fetchval("SELECT count(*) FROM execution.accounts") == 0
    finally:
        await connection.close()
