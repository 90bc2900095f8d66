"""Instrument reference data, cached from the market data service.

Risk never reads market data's schema; it asks the market data service (over
gRPC, through an `InstrumentSource`) and keeps the answer for `ttl_s`, so a check
costs no remote call in the steady state. An expired entry is still used while
one refresh runs, so a slow market data service delays freshness, not checks;
only the very first lookup of a symbol waits for the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.risk.market import Instrument


class InstrumentSource(Protocol):
    async def get(self, symbol: str) -> Instrument | None:
        """The instrument, or None when the symbol is unknown."""


@dataclass(slots=True)
class _Entry:
    instrument: Instrument | None
    fetched_at_s: float


class InstrumentCache:
    def __init__(
        self,
        source: InstrumentSource,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[Instrument | None]] = {}

    async def get(self, symbol: str) -> Instrument | None:
        entry = self._entries.get(symbol)
        if entry is None:
            return await self._refresh(symbol)
        if self._clock() - entry.fetched_at_s > self._ttl_s and symbol not in self._inflight:
            self._start_refresh(symbol)
        return entry.instrument

    def put(self, instrument: Instrument) -> None:
        self._entries[instrument.symbol] = _Entry(instrument, self._clock())

    def _start_refresh(self, symbol: str) -> asyncio.Task[Instrument | None]:
        task = self._inflight.get(symbol)
        if task is None:
            task = asyncio.create_task(self._fetch(symbol))
            self._inflight[symbol] = task
            # A failed background refresh keeps the old entry; the next expiry retries.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _refresh(self, symbol: str) -> Instrument | None:
        # Concurrent first lookups of one symbol share a single remote call.
        return await asyncio.shield(self._start_refresh(symbol))

    async def _fetch(self, symbol: str) -> Instrument | None:
        try:
            instrument = await self._source.get(symbol)
            self._entries[symbol] = _Entry(instrument, self._clock())
            return instrument
        finally:
            self._inflight.pop(symbol, None)
