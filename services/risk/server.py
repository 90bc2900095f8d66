"""The RiskService gRPC edge: decode, consult the desk and the rate limiter, run the rules, encode.

A check reads only in-memory state plus one Redis call (the order-rate bucket);
CheckOrders batches the Redis calls of every request waiting on the stream into
one pipelined round trip. A check may carry its own user's credential: one
stream can then carry many users' orders (execution multiplexes them), and each
check is authorized against its own user, never against whoever opened the
stream. Admin changes are written with their outbox event in
one transaction and applied to this replica's desk at once; other replicas
apply them from `risk.events.v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc

from cift.risk.v1 import events_pb2, risk_pb2, risk_pb2_grpc, rules_pb2
from cift.runtime.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from cift.runtime.identity import SCOPE_TRADE, Identity, current_identity
from cift.runtime.interceptors import CredentialVerifier
from cift.runtime.kafka import new_event_id
from cift.runtime.money import format_decimal
from cift.trading.pretrade.checks import CheckResult, check_order
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.vocabulary import Instrument
from services.risk import codec, store
from services.risk.desk import CallerFigures, RiskDesk
from services.risk.events import RiskEventHub, RiskEvents
from services.risk.marketdata_client import MarketDataInstruments
from services.risk.metrics import record_check
from services.risk.ratelimit import RedisRateLimiter
from services.risk.server_admin import AdminRpcs

GLOBAL_ACCOUNT = store.GLOBAL_ACCOUNT
MAX_CHECKS_PER_MESSAGE = 1000
Context = grpc.aio.ServicerContext[Any, Any]


def _status_code(error: DomainError) -> int:
    """The google.rpc.Code number the interceptor would have answered `error` with."""
    code: grpc.StatusCode = getattr(grpc.StatusCode, error.code_name)
    number: int = code.value[0]
    return number


def _size(message: risk_pb2.CheckOrdersRequest) -> int:
    return len(message.checks) or 1


@dataclass(frozen=True, slots=True)
class _Pending:
    request: risk_pb2.CheckOrderRequest
    order: OrderToCheck
    figures: CallerFigures


class RiskServicer(AdminRpcs, risk_pb2_grpc.RiskServiceServicer):
    def __init__(
        self,
        desk: RiskDesk,
        pool: asyncpg.Pool,
        limiter: RedisRateLimiter,
        instruments: MarketDataInstruments,
        events: RiskEvents,
        hub: RiskEventHub,
        *,
        stream_batch: int = 256,
        credentials: CredentialVerifier | None = None,
    ) -> None:
        self.credentials = credentials
        self.desk = desk
        self.pool = pool
        self.limiter = limiter
        self.instruments = instruments
        self.events = events
        self.hub = hub
        self.stream_batch = stream_batch

    # --- checks -------------------------------------------------------------------

    def _decode(self, request: risk_pb2.CheckOrderRequest) -> _Pending:
        order = codec.order_from_wire(request)
        return _Pending(request, order, codec.figures_from_wire(request))

    async def _authorize(self, caller: Identity, pending: _Pending) -> None:
        """Refuse a check its user may not make: the check's own credential decides, if sent.

        The RPC's caller stands in only for checks without a credential, so a
        stream opened by one user cannot check orders of accounts whose
        credentials it does not hold (unless that user is an admin).
        """
        acting = caller
        credential = pending.request.credential
        if credential:
            if self.credentials is None:
                raise Unavailable("Check credentials cannot be verified by this risk service.")
            acting = await self.credentials.verify_token(credential)
        acting.require_scope(SCOPE_TRADE)
        acting.require_account(pending.order.account_id)

    def _decide(
        self, pending: _Pending, instrument: Instrument | None, rate: RateDecision, now_ns: int
    ) -> tuple[risk_pb2.CheckOrderResponse, CheckResult]:
        snap = self.desk.snapshot(pending.order, pending.figures, instrument, rate, now_ns)
        result = check_order(pending.order, snap)
        record_check(result)
        response = risk_pb2.CheckOrderResponse(
            request_id=pending.request.request_id,
            approved=result.approved,
            violations=[
                rules_pb2.Violation(reason_code=codec.REASONS_TO_WIRE[v.reason], message=v.message)
                for v in result.violations
            ],
        )
        response.checked_at.FromNanoseconds(now_ns)
        quote = snap.quote
        reference = quote.reference_price if quote is not None else None
        if reference is not None:
            response.reference_price = format_decimal(reference)
        if result.order_cost is not None:
            response.order_cost = format_decimal(result.order_cost)
        if result.rate_limited:
            response.retry_after.FromMicroseconds(rate.retry_after_us)
        if not result.approved:
            self._report_rejection(pending, result, now_ns)
        return response, result

    def _report_rejection(self, pending: _Pending, result: CheckResult, now_ns: int) -> None:
        first = result.violations[0]
        event = codec.risk_event(
            event_id=new_event_id(),
            account_id=pending.order.account_id,
            event_type=events_pb2.RISK_EVENT_TYPE_REJECTION,
            message=first.message,
            now_ns=now_ns,
            actor="risk",
            reason=first.reason,
            symbol=pending.order.symbol,
            request_id=pending.request.request_id,
            client_order_id=pending.request.client_order_id,
        )
        task = asyncio.get_running_loop().create_task(self.events.publish_now(event))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def CheckOrder(
        self, request: risk_pb2.CheckOrderRequest, context: Context
    ) -> risk_pb2.CheckOrderResponse:
        pending = self._decode(request)
        await self._authorize(current_identity(), pending)
        instrument = await self.instruments.get(pending.order.symbol)
        limits = self.desk.limits_for(pending.order.account_id)
        rate = await self.limiter.take(pending.order.account_id, limits)
        response, result = self._decide(pending, instrument, rate, time.time_ns())
        if result.rate_limited:
            raise ResourceExhausted(
                next(v.message for v in result.violations if v.reason.value == "RATE_LIMITED"),
                retry_after_s=float(rate.retry_after_s),
                reason="RATE_LIMITED",
            )
        return response

    async def CheckOrders(
        self, request_iterator: AsyncIterator[risk_pb2.CheckOrdersRequest], context: Context
    ) -> AsyncIterator[risk_pb2.CheckOrdersResponse]:
        """Evaluate whatever messages have arrived together, one Redis round trip per batch.

        Each request message is answered by one response message. A malformed
        check ends the stream with INVALID_ARGUMENT naming its request_id: it is
        a bug in the caller, not a risk decision.
        """
        identity = current_identity()
        queue: asyncio.Queue[risk_pb2.CheckOrdersRequest | None] = asyncio.Queue(64)

        async def pump() -> None:
            try:
                async for item in request_iterator:
                    if len(item.checks) > MAX_CHECKS_PER_MESSAGE:
                        raise InvalidArgument(
                            f"A CheckOrders message carries at most {MAX_CHECKS_PER_MESSAGE} checks."
                        )
                    await queue.put(item)
            finally:
                await queue.put(None)

        reader = asyncio.create_task(pump())
        try:
            done = False
            while not done:
                first = await queue.get()
                if first is None:
                    break
                messages = [first]
                size = _size(first)
                while size < self.stream_batch and not queue.empty():
                    item = queue.get_nowait()
                    if item is None:
                        done = True
                        break
                    messages.append(item)
                    size += _size(item)
                checks = [c for m in messages for c in (m.checks if m.checks else [m.check])]
                answers = iter(await self._check_batch(identity, checks))
                for message in messages:
                    if message.checks:
                        results = [next(answers) for _ in message.checks]
                        yield risk_pb2.CheckOrdersResponse(results=results)
                    else:
                        yield risk_pb2.CheckOrdersResponse(result=next(answers))
            # The reader has ended; a bad message it refused surfaces here.
            await reader
        finally:
            # Cancel a reader still running, and collect one that failed while this
            # generator was being closed (server stopping, caller gone), so its
            # error is not reported as never retrieved.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _check_batch(
        self, identity: Identity, checks: Sequence[risk_pb2.CheckOrderRequest]
    ) -> list[risk_pb2.CheckOrderResponse]:
        decoded: list[_Pending] = []
        for check in checks:
            try:
                decoded.append(self._decode(check))
            except InvalidArgument as exc:
                raise InvalidArgument(f"request_id {check.request_id!r}: {exc.message}") from None
        refusals = await asyncio.gather(*(self._refusal(identity, p) for p in decoded))
        pending = [p for p, refused in zip(decoded, refusals, strict=True) if refused is None]
        symbols = list({p.order.symbol for p in pending})
        found = await asyncio.gather(*(self.instruments.get(symbol) for symbol in symbols))
        instruments = dict(zip(symbols, found, strict=True))
        rates = await self.limiter.take_many(
            [(p.order.account_id, self.desk.limits_for(p.order.account_id)) for p in pending]
        )
        now_ns = time.time_ns()
        decided = iter(
            [
                self._decide(p, instruments[p.order.symbol], rate, now_ns)[0]
                for p, rate in zip(pending, rates, strict=True)
            ]
        )
        return [next(decided) if refused is None else refused for refused in refusals]

    async def _refusal(
        self, caller: Identity, pending: _Pending
    ) -> risk_pb2.CheckOrderResponse | None:
        """None when the check may be evaluated; else its in-place refusal.

        One user's bad or expired credential must not end a stream that carries
        other users' checks, so the refusal is an answer, not a stream error.
        """
        try:
            await self._authorize(caller, pending)
        except (PermissionDenied, Unauthenticated, Unavailable) as exc:
            return risk_pb2.CheckOrderResponse(
                request_id=pending.request.request_id,
                approved=False,
                refused_code=_status_code(exc),
                refused_message=exc.message,
            )
        return None

    # --- limits and states --------------------------------------------------------
