"""Entry point of the risk service process: `python -m services.risk [serve|migrate]`."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from datetime import datetime, timedelta

from cift.risk.v1 import risk_pb2, risk_pb2_grpc
from cift.runtime.identity import SCOPE_ADMIN, SCOPE_READ, SCOPE_TRADE
from cift.runtime.kafka import TOPIC_FILLS, TOPIC_RISK_EVENTS, TOPIC_TICKS
from cift.runtime.server import ServiceContext, outbox_service, run_service
from cift.runtime.timestamps import to_ns
from cift.runtime.tokens import JwksVerifier
from cift.trading.pretrade.limits import validate
from services.risk import store
from services.risk.config import RiskConfig
from services.risk.desk import RiskDesk
from services.risk.events import FILLS_CONSUMER, RiskEventHub, RiskEvents
from services.risk.marketdata_client import MarketDataInstruments
from services.risk.metrics import watch_kill_switch
from services.risk.ratelimit import RedisRateLimiter
from services.risk.server import RiskServicer

log = logging.getLogger(__name__)

SERVICE = risk_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name
# Rows committed out of timestamp order are caught by re-reading a little history.
REFRESH_OVERLAP = timedelta(seconds=5)


class StoreRefresher:
    """Reloads limits, states and positions changed by other replicas (a backstop to events)."""

    def __init__(self, ctx: ServiceContext[RiskConfig], desk: RiskDesk, events: RiskEvents) -> None:
        self.ctx = ctx
        self.desk = desk
        self.events = events
        self.seen: datetime | None = None

    async def load(self) -> None:
        async with self.ctx.pool.acquire() as conn:
            since = None if self.seen is None else self.seen - REFRESH_OVERLAP
            newest = self.seen
            for row in await store.overrides_changed_since(conn, since):
                self.desk.set_overrides(row.account_id, row.overrides)
                newest = max(newest or row.updated_at, row.updated_at)
            for state in await store.states_changed_since(conn, since):
                self.events.apply_state(state.account_id, state.state, to_ns(state.updated_at))
                newest = max(newest or state.updated_at, state.updated_at)
            for position in await store.positions_changed_since(conn, since):
                self.desk.exposure.set_position(
                    position.account_id, position.symbol, position.qty, position.last_fill_price
                )
                newest = max(newest or position.updated_at, position.updated_at)
            self.seen = newest

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.config.risk_state_refresh_s)
            try:
                await self.load()
            except Exception:
                log.warning("could not refresh risk state from the database", exc_info=True)


async def setup(ctx: ServiceContext[RiskConfig]) -> None:
    config = ctx.config
    desk = RiskDesk(config.default_limits())
    watch_kill_switch(desk)
    validate(desk.defaults)
    hub = RiskEventHub()
    events = RiskEvents(desk, ctx.pool, ctx.producer, hub)
    refresher = StoreRefresher(ctx, desk, events)
    await refresher.load()
    limiter = RedisRateLimiter(ctx.redis)
    await limiter.load()
    instruments = MarketDataInstruments(config.marketdata_addr, config.risk_instrument_cache_s)
    ctx.on_shutdown(instruments.close)
    # Verifies the per-check credentials of multiplexed CheckOrders streams
    # (verified tokens are cached until they expire).
    credentials = JwksVerifier(config)
    ctx.on_shutdown(credentials.close)
    servicer = RiskServicer(
        desk,
        ctx.pool,
        limiter,
        instruments,
        events,
        hub,
        stream_batch=config.risk_stream_batch,
        credentials=credentials,
    )
    risk_pb2_grpc.add_RiskServiceServicer_to_server(servicer, ctx.server)  # type: ignore[no-untyped-call]

    # Every replica needs every quote and every risk event, so those groups are
    # per process; fills are applied once (shared group) and reach the other
    # replicas through the database refresh.
    replica = uuid.uuid4().hex[:12]
    ticks = ctx.consumer(
        f"risk-quotes-{replica}", [TOPIC_TICKS], from_beginning=False, max_batch=2000
    )
    ctx.spawn("quotes", ticks.run(events.on_ticks))
    fills = ctx.consumer(FILLS_CONSUMER, [TOPIC_FILLS], from_beginning=True)
    ctx.spawn("exposure", fills.run(events.on_fills))
    risk_events = ctx.consumer(f"risk-events-{replica}", [TOPIC_RISK_EVENTS], from_beginning=False)
    ctx.spawn("risk-events", risk_events.run(events.on_risk_events))
    ctx.spawn("store-refresh", refresher.run())


SPEC = outbox_service(
    name="risk",
    config_type=RiskConfig,
    service=SERVICE,
    methods_by_scope={
        SCOPE_TRADE: ("CheckOrder", "CheckOrders"),
        SCOPE_READ: ("GetRiskLimits", "StreamRiskEvents"),
        SCOPE_ADMIN: ("UpdateRiskLimits", "SetTradingState"),
    },
    setup=setup,
    main_file=__file__,
)

if __name__ == "__main__":
    sys.exit(run_service(SPEC))
