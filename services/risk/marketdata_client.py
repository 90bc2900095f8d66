"""Instruments from the market data service over gRPC (risk never reads its schema)."""

from __future__ import annotations

import grpc

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.clients import open_channel
from cift.runtime.errors import Unavailable
from services.risk.codec import instrument_from_wire
from services.risk.market import Instrument

CALL_TIMEOUT_S = 2.0


class MarketDataInstruments:
    """An `InstrumentSource` calling GetInstrument with the current caller's identity."""

    def __init__(self, address: str) -> None:
        self._channel = open_channel(address)
        self._stub = marketdata_pb2_grpc.MarketDataServiceStub(self._channel)

    async def get(self, symbol: str) -> Instrument | None:
        try:
            response = await self._stub.GetInstrument(
                marketdata_pb2.GetInstrumentRequest(symbol=symbol), timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise Unavailable(
                f"The market data service could not describe {symbol} ({exc.code().name}); retry shortly."
            ) from None
        return instrument_from_wire(response.instrument)

    async def close(self) -> None:
        await self._channel.close(None)
