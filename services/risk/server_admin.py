"""The gRPC edge of risk administration: limits, trading states (the kill switch) and the
risk event stream. Decode, apply through the desk and the store, encode.

A mixin of `server.RiskServicer`, which serves the whole RiskService.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc

from cift.risk.v1 import events_pb2, risk_pb2, rules_pb2
from cift.runtime.errors import (
    InvalidArgument,
    PermissionDenied,
)
from cift.runtime.identity import SCOPE_ADMIN, current_identity
from cift.runtime.kafka import new_event_id
from cift.runtime.timestamps import timestamp_of, to_ns
from cift.trading.pretrade.limits import LimitOverrides, effective_limits, validate
from cift.trading.pretrade.trading_state import TradingState
from services.risk import codec, store
from services.risk.desk import RiskDesk
from services.risk.events import RiskEventHub, RiskEvents, enqueue_risk_event

GLOBAL_ACCOUNT = store.GLOBAL_ACCOUNT
Context = grpc.aio.ServicerContext[Any, Any]


class AdminRpcs:
    desk: RiskDesk
    pool: asyncpg.Pool
    events: RiskEvents
    hub: RiskEventHub

    def _limits_message(self, account_id: str, updated_at: Any = None) -> rules_pb2.RiskLimits:
        return codec.limits_to_wire(
            account_id,
            self.desk.limits_for(account_id),
            self.desk.overrides.get(account_id, LimitOverrides()),
            self.desk.state_of(account_id),
            self.desk.effective_state_of(account_id),
            updated_at,
        )

    async def GetRiskLimits(
        self, request: risk_pb2.GetRiskLimitsRequest, context: Context
    ) -> risk_pb2.GetRiskLimitsResponse:
        identity = current_identity()
        account_id = request.account_id or identity.account_id
        identity.require_account(account_id)
        if account_id == GLOBAL_ACCOUNT:
            raise InvalidArgument("Limits belong to accounts; name an account id, not '*'.")
        return risk_pb2.GetRiskLimitsResponse(limits=self._limits_message(account_id))

    async def UpdateRiskLimits(
        self, request: risk_pb2.UpdateRiskLimitsRequest, context: Context
    ) -> risk_pb2.UpdateRiskLimitsResponse:
        identity = current_identity()
        identity.require_scope(SCOPE_ADMIN)
        account_id = request.account_id
        if not account_id or account_id == GLOBAL_ACCOUNT:
            raise InvalidArgument("account_id is required: the account whose limits change.")
        changes, reset = codec.overrides_from_wire(request)
        validate(changes)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await store.lock_overrides(conn, account_id)
            updated = current.updated(changes, reset)
            validate(effective_limits(self.desk.defaults, updated))
            updated_at = await store.save_overrides(conn, account_id, updated, identity.user_id)
            pinned = ", ".join(f"{k}={v}" for k, v in sorted(updated.pinned().items())) or "none"
            event = codec.risk_event(
                event_id=new_event_id(),
                account_id=account_id,
                event_type=events_pb2.RISK_EVENT_TYPE_LIMITS_UPDATED,
                message=f"Risk limits changed; overrides now: {pinned}.",
                now_ns=time.time_ns(),
                actor=identity.user_id,
            )
            await enqueue_risk_event(conn, event)
        self.desk.set_overrides(account_id, updated)
        return risk_pb2.UpdateRiskLimitsResponse(
            limits=self._limits_message(account_id, updated_at)
        )

    async def SetTradingState(
        self, request: risk_pb2.SetTradingStateRequest, context: Context
    ) -> risk_pb2.SetTradingStateResponse:
        identity = current_identity()
        identity.require_scope(SCOPE_ADMIN)
        account_id = request.account_id
        if not account_id:
            raise InvalidArgument(
                "account_id is required: an account id, or '*' for the kill switch."
            )
        state = codec.STATES_FROM_WIRE.get(request.state)
        if state is None:
            raise InvalidArgument(
                "state must be TRADING_STATE_ACTIVE, TRADING_STATE_REDUCING or TRADING_STATE_HALTED."
            )
        reason = request.reason.strip()[:500]
        is_global = account_id == GLOBAL_ACCOUNT
        async with self.pool.acquire() as conn, conn.transaction():
            previous, updated_at = await store.set_state(
                conn, account_id, state, reason, identity.user_id
            )
            changed_at_ns = to_ns(updated_at)
            what = "All trading" if is_global else "Trading on this account"
            wording = {
                TradingState.ACTIVE: "is active again",
                TradingState.REDUCING: "may only reduce positions",
                TradingState.HALTED: "is halted",
            }[state]
            event = codec.risk_event(
                event_id=new_event_id(),
                account_id=account_id,
                event_type=(
                    events_pb2.RISK_EVENT_TYPE_KILL_SWITCH
                    if is_global
                    else events_pb2.RISK_EVENT_TYPE_TRADING_STATE_CHANGED
                ),
                message=f"{what} {wording}" + (f": {reason}" if reason else "."),
                now_ns=changed_at_ns,
                actor=identity.user_id,
                state=state,
                previous_state=previous,
            )
            await enqueue_risk_event(conn, event)
        self.events.apply_state(account_id, state, changed_at_ns)
        return risk_pb2.SetTradingStateResponse(
            account_id=account_id,
            state=codec.STATES_TO_WIRE[state],
            previous_state=codec.STATES_TO_WIRE[previous],
            updated_at=timestamp_of(updated_at),
        )

    async def StreamRiskEvents(
        self, request: risk_pb2.StreamRiskEventsRequest, context: Context
    ) -> AsyncIterator[risk_pb2.StreamRiskEventsResponse]:
        identity = current_identity()
        account_filter = request.account_id or identity.account_id
        if account_filter != identity.account_id and not identity.is_admin:
            raise PermissionDenied("You may only stream your own account's risk events.")
        async for event in self.hub.subscribe(account_filter):
            yield risk_pb2.StreamRiskEventsResponse(event=event)
