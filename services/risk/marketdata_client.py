"""Instruments from the market data service over gRPC (risk never reads its schema).

The caching is the runtime's (`cift.runtime.instruments`); this edge decides what
risk makes of market data's answers: an unknown symbol is None (the check reports
it), and market data being unreachable is UNAVAILABLE rather than a failed rule.
"""

from __future__ import annotations

import grpc

from cift.runtime.clients import open_channel
from cift.runtime.errors import Unavailable
from cift.runtime.instrument_wire import instrument_from_wire
from cift.runtime.instruments import InstrumentCache
from cift.trading.vocabulary import Instrument

CALL_TIMEOUT_S = 2.0


class MarketDataInstruments:
    """GetInstrument with the current caller's identity, each answer reused for `ttl_s`."""

    def __init__(self, address: str, ttl_s: float) -> None:
        self._channel = open_channel(address)
        self._cache = InstrumentCache(
            self._channel, instrument_from_wire, ttl_s, timeout_s=CALL_TIMEOUT_S
        )

    async def get(self, symbol: str) -> Instrument | None:
        """The instrument, or None when the symbol is unknown."""
        try:
            return await self._cache.get(symbol)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return None
            raise Unavailable(
                f"The market data service could not describe {symbol} ({exc.code().name}); retry shortly."
            ) from None

    async def close(self) -> None:
        await self._channel.close(None)
