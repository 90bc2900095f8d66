"""Kafka in and out for risk.

In: quotes from `marketdata.ticks.v1` (latest per symbol, in memory), fills from
`execution.fills.v1` (positions, persisted idempotently, and breach detection),
and `risk.events.v1` itself (so every replica applies state changes made by
another, and StreamRiskEvents subscribers see events from all replicas).
Out: rejections are published directly (no database change goes with them);
state changes, limit updates and breaches leave through the outbox with their
database change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import Counter

from cift.execution.v1 import events_pb2 as execution_events_pb2
from cift.execution.v1 import orders_pb2
from cift.marketdata.v1 import events_pb2 as marketdata_events_pb2
from cift.risk.v1 import events_pb2
from cift.runtime import db, outbox
from cift.runtime.kafka import TOPIC_RISK_EVENTS, Event, EventProducer, new_event_id
from cift.runtime.money import require_decimal
from cift.trading.pretrade.exposure import position_breaches
from cift.trading.pretrade.rules import Violation
from cift.trading.pretrade.trading_state import TradingState
from services.risk import store
from services.risk.codec import STATES_FROM_WIRE, quote_from_wire, risk_event
from services.risk.desk import RiskDesk

log = logging.getLogger(__name__)


FILLS_CONSUMER = "risk-exposure"
GLOBAL_ACCOUNT = store.GLOBAL_ACCOUNT

DROPPED = Counter(
    "cift_risk_event_stream_dropped_total",
    "Risk events dropped for a StreamRiskEvents subscriber that fell behind.",
)


@dataclass(eq=False)
class _Subscriber:
    account_filter: str
    queue: asyncio.Queue[events_pb2.RiskEvent] = field(default_factory=lambda: asyncio.Queue(1024))

    def wants(self, event: events_pb2.RiskEvent) -> bool:
        if self.account_filter == GLOBAL_ACCOUNT:
            return True
        return event.account_id in (self.account_filter, GLOBAL_ACCOUNT)


class RiskEventHub:
    """Fans risk events out to StreamRiskEvents subscribers.

    Each subscriber has a bounded queue; one that falls behind loses its oldest
    events (counted), so a slow client never delays the others or the consumer.
    """

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()

    def publish(self, event: events_pb2.RiskEvent) -> None:
        for subscriber in self._subscribers:
            if not subscriber.wants(event):
                continue
            if subscriber.queue.full():
                subscriber.queue.get_nowait()
                DROPPED.inc()
            subscriber.queue.put_nowait(event)

    async def subscribe(self, account_filter: str) -> AsyncIterator[events_pb2.RiskEvent]:
        subscriber = _Subscriber(account_filter)
        self._subscribers.add(subscriber)
        try:
            while True:
                yield await subscriber.queue.get()
        finally:
            self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


async def enqueue_risk_event(conn: asyncpg.Connection, event: events_pb2.RiskEvent) -> None:
    """Put `event` in the outbox of the caller's transaction under the id it carries: the
    record's id is what consumers deduplicate by, the event's what its readers see."""
    await outbox.enqueue(conn, TOPIC_RISK_EVENTS, event.account_id, event, event_id=event.event_id)


class RiskEvents:
    def __init__(
        self, desk: RiskDesk, pool: asyncpg.Pool, producer: EventProducer, hub: RiskEventHub
    ) -> None:
        self.desk = desk
        self.pool = pool
        self.producer = producer
        self.hub = hub

    async def publish_now(self, event: events_pb2.RiskEvent) -> None:
        """Publish an event that has no database change (a rejection); never blocks the check."""
        try:
            await self.producer.publish(
                TOPIC_RISK_EVENTS, event.account_id, event, event_id=event.event_id, wait=False
            )
        except Exception:
            log.warning(
                "could not publish risk event",
                exc_info=True,
                extra={"account_id": event.account_id},
            )

    async def on_ticks(self, batch: list[Event]) -> None:
        received_ns = time.time_ns()
        for event in batch:
            message = event.message
            if (
                isinstance(message, marketdata_events_pb2.TickEvent)
                and message.WhichOneof("tick") == "quote"
            ):
                self.desk.quotes.update(
                    quote_from_wire(message.quote, received_ns), message.quote.sequence
                )

    async def on_fills(self, batch: list[Event]) -> None:
        """Apply each fill's resulting position once; report positions grown over a limit."""
        async with self.pool.acquire() as conn, conn.transaction():
            for event in batch:
                message = event.message
                if not isinstance(message, execution_events_pb2.FillEvent):
                    continue
                fill = message.fill
                if not await db.claim_event(conn, FILLS_CONSUMER, event.event_id):
                    continue
                qty = require_decimal("position_qty", message.position_qty or "0")
                price = require_decimal("price", fill.price)
                before = self.desk.exposure.position_qty(fill.account_id, fill.symbol)
                await store.set_position(conn, fill.account_id, fill.symbol, qty, price)
                self.desk.exposure.set_position(fill.account_id, fill.symbol, qty, price)
                if abs(qty) > abs(before):
                    mark = self.desk.mark(fill.symbol) or price
                    gross = self.desk.exposure.gross_exposure(fill.account_id, self.desk.mark)
                    limits = self.desk.limits_for(fill.account_id)
                    for breach in position_breaches(fill.symbol, qty, mark, gross, limits):
                        await enqueue_risk_event(conn, self._breach(fill, breach))

    @staticmethod
    def _breach(fill: orders_pb2.Fill, breach: Violation) -> events_pb2.RiskEvent:
        return risk_event(
            event_id=new_event_id(),
            account_id=fill.account_id,
            event_type=events_pb2.RISK_EVENT_TYPE_BREACH,
            message=breach.message,
            now_ns=time.time_ns(),
            actor="risk",
            reason=breach.reason,
            symbol=fill.symbol,
        )

    async def on_risk_events(self, batch: list[Event]) -> None:
        """Apply state and limit changes made by any replica, then fan events out."""
        for event in batch:
            message = event.message
            if not isinstance(message, events_pb2.RiskEvent):
                continue
            if message.type in (
                events_pb2.RISK_EVENT_TYPE_TRADING_STATE_CHANGED,
                events_pb2.RISK_EVENT_TYPE_KILL_SWITCH,
            ):
                state = STATES_FROM_WIRE.get(message.trading_state)
                if state is not None:
                    self.apply_state(message.account_id, state, message.timestamp.ToNanoseconds())
            elif message.type == events_pb2.RISK_EVENT_TYPE_LIMITS_UPDATED:
                async with self.pool.acquire() as conn:
                    self.desk.set_overrides(
                        message.account_id, await store.overrides_for(conn, message.account_id)
                    )
            self.hub.publish(message)

    def apply_state(self, account_id: str, state: TradingState, changed_at_ns: int) -> None:
        """Apply a state change unless a later one was applied already.

        The same change arrives up to three ways (the admin call on this replica,
        the event, the database refresh) and not in order, so each carries the
        database time of the change and only the newest wins.
        """
        if changed_at_ns <= self.desk.state_changed_at_ns.get(account_id, -1):
            return
        self.desk.state_changed_at_ns[account_id] = changed_at_ns
        if account_id == GLOBAL_ACCOUNT:
            self.desk.venue_state = state
        else:
            self.desk.states[account_id] = state
