"""Instruments from the market data service's GetInstrument, cached per symbol.

Risk and execution both need an instrument's trading rules on every order; a
remote call per order would put market data on every order's path. An answer,
"no such symbol" (NOT_FOUND) included, is kept for `ttl_s`. An expired answer is
still served while one background refresh runs, so a slow market data service
delays freshness, not orders; only a symbol's first lookup waits, and concurrent
first lookups share one call. Any other gRPC error of a first lookup reaches the
caller as the `grpc.aio.AioRpcError`, for each service to turn into its own
errors; a failed background refresh keeps the old answer and the next expiry
retries.

The cache never reads market data's schema and never decodes a message itself:
it applies the `decode` it is given once per answer (the services give it
`cift.runtime.instrument_wire.instrument_from_wire`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc

T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    instrument: T | None
    fetched_at_s: float


class InstrumentCache(Generic[T]):
    """`decode`d GetInstrument answers per symbol over `channel`; None for an unknown symbol."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        decode: Callable[[marketdata_pb2.Instrument], T],
        ttl_s: float,
        *,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        self._decode = decode
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}
        self._inflight: dict[str, asyncio.Task[T | None]] = {}

    async def get(self, symbol: str) -> T | None:
        entry = self._entries.get(symbol)
        if entry is None:
            # shield: a caller that gives up does not cancel the call others share.
            return await asyncio.shield(self._start_refresh(symbol))
        if self._clock() - entry.fetched_at_s > self._ttl_s and symbol not in self._inflight:
            self._start_refresh(symbol)
        return entry.instrument

    def _start_refresh(self, symbol: str) -> asyncio.Task[T | None]:
        task = self._inflight.get(symbol)
        if task is None:
            task = asyncio.create_task(self._fetch(symbol))
            self._inflight[symbol] = task
            # Marks a failure retrieved: a background refresh's error has no caller.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _fetch(self, symbol: str) -> T | None:
        try:
            instrument = await self._ask(symbol)
            self._entries[symbol] = _Entry(instrument, self._clock())
            return instrument
        finally:
            self._inflight.pop(symbol, None)

    async def _ask(self, symbol: str) -> T | None:
        try:
            reply = await self._stub.GetInstrument(
                marketdata_pb2.GetInstrumentRequest(symbol=symbol), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return self._decode(reply.instrument)
