"""The services execution depends on, reached over gRPC: risk checks and market reference data.

Instruments (tick and lot size), quotes, previous closes (daily bars) and the
market clock come from the market data service's API, never its schema. Calls
forward the caller's credential (`cift.runtime.clients.open_channel`). gRPC
failures become the runtime's errors so the edge answers with a status a person
can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import grpc

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.risk.v1 import risk_pb2, risk_pb2_grpc
from cift.runtime.coalesce import BATCH_SIZE
from cift.runtime.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from cift.runtime.identity import IDENTITY_TOKEN_HEADER, maybe_identity
from cift.runtime.instrument_wire import instrument_from_wire
from cift.runtime.instruments import InstrumentCache
from cift.runtime.money import decimal_of_double
from cift.trading.intraday import NS_PER_DAY
from cift.trading.vocabulary import Instrument
from services.execution.app.ports import MarketClock

INSTRUMENT_CACHE_S = 30.0
# A symbol with no daily bar yet is asked again after this long (a bar may appear).
MISSING_CLOSE_RETRY_S = 30.0
# How far back to look for the last daily bar: past any run of weekends and holidays.
PREVIOUS_CLOSE_LOOKBACK_NS = 31 * NS_PER_DAY


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


class MarketReference:
    """Instruments, latest quotes and the clock from the market data service."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 2.0) -> None:
        self._stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        self._timeout_s = timeout_s
        self._instruments = InstrumentCache(
            channel, instrument_from_wire, INSTRUMENT_CACHE_S, timeout_s=timeout_s
        )
        # symbol -> (trading day start, when asked, close): one question per symbol per day.
        self._previous_closes: dict[str, tuple[int, float, Decimal | None]] = {}

    async def instrument(self, symbol: str) -> Instrument:
        """The trading rules of `symbol`; INVALID_ARGUMENT for a symbol nobody lists."""
        try:
            instrument = await self._instruments.get(symbol)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "market data service") from None
        if instrument is None:
            raise InvalidArgument(f"Unknown symbol {symbol!r}: no instrument is listed under it.")
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
            symbol: (decimal_of_double(q.bid), decimal_of_double(q.ask), decimal_of_double(q.last))
            for symbol, q in reply.quotes.items()
        }

    async def previous_closes(self, symbols: list[str], day_start_ns: int) -> dict[str, Decimal]:
        """The close of each symbol's last daily bar before `day_start_ns`; absent when none."""
        closes = await asyncio.gather(*(self._previous_close(s, day_start_ns) for s in symbols))
        return {s: close for s, close in zip(symbols, closes, strict=True) if close is not None}

    async def _previous_close(self, symbol: str, day_start_ns: int) -> Decimal | None:
        day, asked_at, close = self._previous_closes.get(symbol, (None, 0.0, None))
        fresh = close is not None or time.monotonic() - asked_at < MISSING_CLOSE_RETRY_S
        if day == day_start_ns and fresh:
            return close
        request = marketdata_pb2.GetBarsRequest(symbol=symbol, timeframe="1Day")
        request.start.FromNanoseconds(day_start_ns - PREVIOUS_CLOSE_LOOKBACK_NS)
        request.end.FromNanoseconds(day_start_ns)
        try:
            reply = await self._stub.GetBars(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise _translate(error, "market data service") from None
            reply = marketdata_pb2.GetBarsResponse()  # no longer listed: no close to report
        # Oldest first, and the lookback holds fewer bars than one page.
        close = decimal_of_double(reply.bars[-1].close) if reply.bars else None
        self._previous_closes[symbol] = (day_start_ns, time.monotonic(), close)
        return close

    async def clock(self) -> MarketClock:
        try:
            reply = await self._stub.GetClock(
                marketdata_pb2.GetClockRequest(), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "market data service") from None
        return clock_from_reply(reply)


def clock_from_reply(reply: marketdata_pb2.GetClockResponse) -> MarketClock:
    # An unset next_close would read as the epoch: a close long passed, at every poll.
    next_close = reply.next_close.ToNanoseconds() if reply.HasField("next_close") else None
    next_open = reply.next_open.ToNanoseconds() if reply.HasField("next_open") else None
    previous_close = (
        reply.previous_close.ToNanoseconds() if reply.HasField("previous_close") else None
    )
    return MarketClock(
        reply.timestamp.ToNanoseconds(), reply.is_open, next_close, next_open, previous_close
    )


_CHECKS_PER_MESSAGE = BATCH_SIZE.labels("risk_check")


class RiskGate:
    """Pre-trade checks at the risk service: unary when quiet, one batched stream under load.

    A unary CheckOrder costs a full gRPC round trip per order; under load the
    checks waiting at the same moment go out together as one CheckOrders message
    (`checks`, up to `max_batch`), answered by one message and matched back by
    request_id. The stream is shared by every user, so each check carries its own
    user's credential and risk authorizes it against that, not against whoever
    opened the stream (the first user it was opened for). A check without a
    credential to send (a caller trusted by gateway headers only) always goes
    unary, acting as the forwarded caller.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        timeout_s: float = 2.0,
        *,
        stream_threshold: int = 1,
        max_batch: int = 256,
        busy_interval_s: float = 0.005,
        max_unanswered: int = 1,
    ) -> None:
        self._stub = risk_pb2_grpc.RiskServiceStub(channel)
        self._timeout_s = timeout_s
        self._stream_threshold = stream_threshold
        self._max_batch = max_batch
        # Messages sent and not yet answered. While the allowance is used up, new
        # checks gather for the next message: under load a message then carries
        # every check of a whole round trip, and each message costs both services
        # a fixed ~0.1-0.2 ms whatever it carries (bench/REPORT-execution.md).
        self._max_unanswered = max_unanswered
        self._unanswered = 0
        self._in_flight = 0
        self._busy_interval_s = busy_interval_s
        self._last_check = 0.0
        self._waiting: dict[str, asyncio.Future[risk_pb2.CheckOrderResponse]] = {}
        self._outgoing: list[risk_pb2.CheckOrderRequest] = []
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._generation = 0  # bumped per stream opened; an ended stream's sender stops
        self.streamed = 0  # checks sent over the stream (observability and tests)
        self.messages = 0  # CheckOrders messages they went in

    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        identity = maybe_identity()
        credential = identity.token if identity is not None else ""
        now = time.monotonic()
        # Under load: other checks are in flight, or they arrive faster than one
        # per busy interval (a closed loop of callers never overlaps much, yet a
        # round trip each is what the stream saves).
        busy = now - self._last_check < self._busy_interval_s
        self._last_check = now
        self._in_flight += 1
        try:
            if credential and (busy or self._in_flight > self._stream_threshold):
                request.credential = credential
                return await self._streamed(request)
            return await self._unary(request)
        finally:
            self._in_flight -= 1

    async def _unary(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        try:
            reply: risk_pb2.CheckOrderResponse = await self._stub.CheckOrder(
                request, timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ResourceExhausted(
                    error.details() or "Too many orders; slow down.",
                    retry_after_s=_retry_after(error),
                    reason="RATE_LIMITED",
                ) from None
            raise _translate(error, "risk service") from None
        return reply

    async def _streamed(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        future: asyncio.Future[risk_pb2.CheckOrderResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[request.request_id] = future
        self._outgoing.append(request)
        self._wake.set()
        if self._reader is None:
            self._open(request.credential)
        self.streamed += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await future
        except TimeoutError:
            raise Unavailable(
                "The risk service is unavailable right now; try again shortly."
            ) from None
        finally:
            self._waiting.pop(request.request_id, None)
        if reply.refused_code:
            raise _refusal(reply)
        return reply

    def _open(self, credential: str) -> None:
        # The stream RPC itself needs an authenticated trader: it is opened with
        # the credential of the check that opened it (each check still carries its own).
        self._generation += 1
        call = self._stub.CheckOrders(
            self._requests(self._generation), metadata=((IDENTITY_TOKEN_HEADER, credential),)
        )
        self._reader = asyncio.get_running_loop().create_task(self._read(call))

    async def _requests(self, generation: int) -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        while True:
            await self._wake.wait()
            # One turn of the event loop lets the checks made ready by the same
            # wake-up join this message instead of each paying for its own.
            await asyncio.sleep(0)
            if generation != self._generation:
                return  # this stream has ended: a newer one sends what is waiting
            self._wake.clear()
            while self._outgoing and self._unanswered < self._max_unanswered:
                batch = self._outgoing[: self._max_batch]
                del self._outgoing[: self._max_batch]
                self.messages += 1
                self._unanswered += 1
                _CHECKS_PER_MESSAGE.observe(len(batch))
                yield risk_pb2.CheckOrdersRequest(checks=batch)

    async def _read(self, call: Any) -> None:
        failure: DomainError = Unavailable(
            "The risk service is unavailable right now; try again shortly."
        )
        try:
            async for message in call:
                # Risk answers each message with one message: the sender may go on.
                self._unanswered = max(0, self._unanswered - 1)
                if self._outgoing:
                    self._wake.set()
                for result in message.results or [message.result]:
                    future = self._waiting.pop(result.request_id, None)
                    if future is not None and not future.done():
                        future.set_result(result)
        except grpc.aio.AioRpcError as error:
            failure = _translate(error, "risk service")
        except asyncio.CancelledError:
            call.cancel()
            raise
        finally:
            # Checks still waiting on a stream that ended fail now rather than at
            # their deadline; the next check opens a new stream.
            self._reader = None
            self._unanswered = 0
            self._generation += 1
            self._wake.set()  # lets the ended stream's sender see it and stop
            self._outgoing.clear()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(failure)
            self._waiting.clear()

    async def close(self) -> None:
        reader = self._reader
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


def _retry_after(error: grpc.aio.AioRpcError) -> float:
    pairs: Any = error.trailing_metadata() or ()
    for key, value in pairs:
        if key == "retry-after":
            try:
                return float(value if isinstance(value, str) else bytes(value).decode())
            except ValueError:
                break
    return 1.0


def _refusal(reply: risk_pb2.CheckOrderResponse) -> DomainError:
    message = reply.refused_message or "The risk service refused to check this order."
    if reply.refused_code == grpc.StatusCode.PERMISSION_DENIED.value[0]:
        return PermissionDenied(message)
    if reply.refused_code == grpc.StatusCode.UNAUTHENTICATED.value[0]:
        return Unauthenticated(message)
    return Unavailable(message)
