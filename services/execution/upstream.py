"""The services execution depends on, reached over gRPC: risk checks and market reference data.

Instruments (tick and lot size), quotes and the market clock come from the market
data service's API, never its schema. Calls forward the caller's credential
(`cift.runtime.clients.open_channel`). gRPC failures become the runtime's errors
so the edge answers with a status a person can act on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import grpc

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.risk.v1 import risk_pb2, risk_pb2_grpc
from cift.runtime.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from services.execution.orders import Instrument

INSTRUMENT_CACHE_S = 30.0


def _translate(error: grpc.aio.AioRpcError, what: str) -> DomainError:
    code = error.code()
    detail = error.details() or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(detail)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(detail)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(detail)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(detail)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(detail)
    return Unavailable(f"The {what} is unavailable right now; try again shortly.")


@dataclass(frozen=True, slots=True)
class MarketClock:
    now_ns: int
    is_open: bool
    next_close_ns: int


class MarketReference:
    """Instruments, latest quotes and the clock from the market data service."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 2.0) -> None:
        self._stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        self._timeout_s = timeout_s
        self._instruments: dict[str, tuple[float, Instrument]] = {}

    async def instrument(self, symbol: str) -> Instrument:
        """The trading rules of `symbol`; INVALID_ARGUMENT for a symbol nobody lists."""
        cached = self._instruments.get(symbol)
        if cached is not None and time.monotonic() - cached[0] < INSTRUMENT_CACHE_S:
            return cached[1]
        try:
            reply = await self._stub.GetInstrument(
                marketdata_pb2.GetInstrumentRequest(symbol=symbol), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise InvalidArgument(
                    f"Unknown symbol {symbol!r}: no instrument is listed under it."
                ) from None
            raise _translate(error, "market data service") from None
        instrument = instrument_from_message(reply.instrument)
        self._instruments[symbol] = (time.monotonic(), instrument)
        return instrument

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        """(bid, ask, last) per symbol that has been quoted; absent when never quoted."""
        if not symbols:
            return {}
        try:
            reply = await self._stub.GetLatestQuotes(
                marketdata_pb2.GetLatestQuotesRequest(symbols=symbols), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "market data service") from None
        return {
            symbol: (Decimal(repr(q.bid)), Decimal(repr(q.ask)), Decimal(repr(q.last)))
            for symbol, q in reply.quotes.items()
        }

    async def clock(self) -> MarketClock:
        try:
            reply = await self._stub.GetClock(
                marketdata_pb2.GetClockRequest(), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "market data service") from None
        return MarketClock(
            reply.timestamp.ToNanoseconds(), reply.is_open, reply.next_close.ToNanoseconds()
        )


def instrument_from_message(message: marketdata_pb2.Instrument) -> Instrument:
    lot = Decimal(message.lot_size or "1")
    minimum = Decimal(message.min_order_size or lot)
    # Fractionable instruments trade in steps of the smallest order size; others in lots.
    increment = minimum if message.fractionable and minimum < lot else lot
    return Instrument(
        symbol=message.symbol,
        tick_size=Decimal(message.tick_size or "0.01"),
        qty_increment=increment,
        fractionable=message.fractionable,
        tradable=message.tradable,
    )


class RiskGate:
    """Pre-trade checks at the risk service (unary CheckOrder)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 2.0) -> None:
        self._stub = risk_pb2_grpc.RiskServiceStub(channel)
        self._timeout_s = timeout_s

    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        try:
            reply: risk_pb2.CheckOrderResponse = await self._stub.CheckOrder(
                request, timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "risk service") from None
        return reply
