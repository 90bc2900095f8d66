"""Entry point of the backtest service process: `python -m services.backtest [serve|migrate]`."""

from __future__ import annotations

import sys
from pathlib import Path

from cift.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from cift.runtime.identity import SCOPE_READ
from cift.runtime.interceptors import RpcPolicy
from cift.runtime.server import ServiceContext, ServiceSpec, run_service
from services.backtest.config import BacktestConfig
from services.backtest.engine import LibraryEngine
from services.backtest.history import MarketDataHistory
from services.backtest.runs import Backtests
from services.backtest.server import BacktestServicer

SERVICE = backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"].full_name
READ = RpcPolicy(scope=SCOPE_READ)


async def setup(ctx: ServiceContext[BacktestConfig]) -> None:
    config = ctx.config
    history = MarketDataHistory(config.marketdata_addr)
    ctx.on_shutdown(history.close)
    backtests = Backtests(
        ctx.pool,
        history,
        LibraryEngine(config.backtest_max_equity_points),
        max_concurrent=config.backtest_max_concurrent_runs,
        max_bars=config.backtest_max_bars,
        heartbeat_s=config.backtest_heartbeat_s,
        orphan_after_s=config.backtest_orphan_after_s,
    )
    # Hooks run newest first: the runs stop (marked FAILED) before the channel closes.
    ctx.on_shutdown(backtests.close)
    servicer = BacktestServicer(backtests)
    backtest_pb2_grpc.add_BacktestServiceServicer_to_server(servicer, ctx.server)  # type: ignore[no-untyped-call]
    ctx.spawn("backtest-heartbeat", backtests.heartbeat())


SPEC = ServiceSpec(
    name="backtest",
    config_type=BacktestConfig,
    service_names=(SERVICE,),
    # Every RPC reads or computes on the caller's own runs: the read scope.
    policies={
        f"/{SERVICE}/{method.name}": READ
        for method in backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"].methods
    },
    setup=setup,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    sys.exit(run_service(SPEC))
