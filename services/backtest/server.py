"""The BacktestService gRPC edge: decode, call the run use cases, encode.

Every call acts for the verified caller (the interceptor checked the credential
and the scope); a caller reaches only their own runs. RunBacktest is
CreateBacktest plus a watch of the run's progress in this process, where it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from cift.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from cift.runtime.errors import InvalidArgument
from cift.runtime.identity import current_identity
from services.backtest import codec
from services.backtest.model import Progress, Run
from services.backtest.runs import Backtests, Tracker

DEFAULT_PAGE = 50
MAX_PAGE = 500
# A quiet run (a long computation without progress callbacks) still sends its
# progress this often, so proxies do not close the stream as idle.
STREAM_KEEPALIVE_S = 15.0


class BacktestServicer(backtest_pb2_grpc.BacktestServiceServicer):
    def __init__(self, backtests: Backtests) -> None:
        self.backtests = backtests

    async def _create(self, spec: backtest_pb2.BacktestSpec) -> tuple[Run, Tracker]:
        caller = current_identity()
        run_spec = codec.spec_from_wire(spec, datetime.now(UTC))
        return await self.backtests.create(caller, run_spec)

    async def CreateBacktest(
        self, request: backtest_pb2.CreateBacktestRequest, context: Any
    ) -> backtest_pb2.CreateBacktestResponse:
        run, _ = await self._create(request.spec)
        return backtest_pb2.CreateBacktestResponse(backtest=codec.run_to_wire(run))

    async def RunBacktest(
        self, request: backtest_pb2.RunBacktestRequest, context: Any
    ) -> AsyncIterator[backtest_pb2.RunBacktestResponse]:
        run, tracker = await self._create(request.spec)
        async for progress in _with_keepalive(tracker):
            yield backtest_pb2.RunBacktestResponse(progress=codec.progress_to_wire(progress))
        finished = await self.backtests.get(current_identity(), run.id)
        yield backtest_pb2.RunBacktestResponse(backtest=codec.run_to_wire(finished))

    async def GetBacktest(
        self, request: backtest_pb2.GetBacktestRequest, context: Any
    ) -> backtest_pb2.GetBacktestResponse:
        run = await self.backtests.get(current_identity(), request.backtest_id)
        return backtest_pb2.GetBacktestResponse(backtest=codec.run_to_wire(run))

    async def ListBacktests(
        self, request: backtest_pb2.ListBacktestsRequest, context: Any
    ) -> backtest_pb2.ListBacktestsResponse:
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            raise InvalidArgument(
                f"page_size must be from 0 to {MAX_PAGE}, not {request.page_size}."
            )
        limit = request.page_size or DEFAULT_PAGE
        after = codec.parse_page_token(request.page_token)
        runs = await self.backtests.list(current_identity(), after, limit + 1)
        page = runs[:limit]
        return backtest_pb2.ListBacktestsResponse(
            backtests=[codec.run_to_wire(run) for run in page],
            next_page_token=codec.page_token(page[-1]) if len(runs) > limit else "",
        )

    async def CancelBacktest(
        self, request: backtest_pb2.CancelBacktestRequest, context: Any
    ) -> backtest_pb2.CancelBacktestResponse:
        run = await self.backtests.cancel(current_identity(), request.backtest_id)
        return backtest_pb2.CancelBacktestResponse(backtest=codec.run_to_wire(run))

    async def ListStrategies(
        self, request: backtest_pb2.ListStrategiesRequest, context: Any
    ) -> backtest_pb2.ListStrategiesResponse:
        return backtest_pb2.ListStrategiesResponse(
            strategies=[codec.strategy_to_wire(info) for info in self.backtests.catalog()]
        )


async def _with_keepalive(tracker: Tracker) -> AsyncIterator[Progress]:
    """The run's progress as it changes, repeated when it has not changed for a while."""
    updates = tracker.updates()
    pending: asyncio.Task[Progress] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(updates))
            done, _ = await asyncio.wait({pending}, timeout=STREAM_KEEPALIVE_S)
            if not done:
                yield tracker.latest
                continue
            try:
                progress = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield progress
            if progress.status.finished:
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await updates.aclose()
