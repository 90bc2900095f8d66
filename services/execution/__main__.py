"""Entry point of the execution service process: `python -m services.execution [serve|migrate]`.

Wires the broker to its database pool, the risk and market data services, the
tick consumer (the fill engine), the session clock that expires day orders, and
the equity snapshots behind portfolio history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

from prometheus_client import Gauge

from cift.execution.v1 import execution_pb2, execution_pb2_grpc
from cift.marketdata.v1 import events_pb2 as _md_events  # noqa: F401 - registers TickEvent for decoding
from cift.runtime.clients import open_channel
from cift.runtime.errors import DomainError
from cift.runtime.identity import SCOPE_READ, SCOPE_TRADE
from cift.runtime.kafka import TOPIC_TICKS
from cift.runtime.server import ServiceContext, outbox_service, run_service
from cift.trading.auction import (
    SessionClock,
    next_change_ns,
    post_session_end_ns,
    session_phase,
)
from cift.trading.fills import CommissionModel, FillEngine, FillModel, SessionPhase, StopTrigger
from services.execution.adapters.risk_check import RiskCheck
from services.execution.adapters.sql_stores import SQL_STORES
from services.execution.adapters.upstream import MarketReference, RiskGate
from services.execution.app.broker import AccountSettings, Broker
from services.execution.app.ports import MarketClock
from services.execution.config import ExecutionConfig
from services.execution.server import ExecutionServicer

log = logging.getLogger(__name__)
SERVICE = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name
TRADE_METHODS = ("SubmitOrder", "ReplaceOrder", "CancelOrder", "CancelAllOrders", "ClosePosition")
READ_METHODS = (
    "GetOrder",
    "ListOrders",
    "StreamOrderUpdates",
    "ListPositions",
    "GetPosition",
    "GetAccount",
    "ListActivities",
    "GetPortfolioHistory",
)


# How soon the session watcher retries a market clock it has never read.
FIRST_READING_RETRY_S = 0.2

ORDERS_OUT_OF_BOOK = Gauge(
    "cift_execution_orders_out_of_book",
    "Orders out of the fill engine's book after a failed commit, until the repair books "
    "them again from their rows (app/restore.py).",
)


def fill_model(config: ExecutionConfig) -> FillModel:
    return FillModel(
        fill_at_displayed_size=config.fill_at_displayed_size,
        slippage_bps=config.slippage_bps,
        stop_trigger=StopTrigger(config.stop_trigger),
        commission=CommissionModel(
            per_share=config.commission_per_share, bps=config.commission_bps
        ),
    )


def resumed_post_market_end(clock: MarketClock) -> int | None:
    """On a first reading while closed: the end of the last close's post-market, if it runs.

    A watcher started after the close has not seen it; the clock's previous close
    tells whether extended-hours orders may still trade.
    """
    if clock.previous_close_ns is None:
        return None
    end = post_session_end_ns(clock.previous_close_ns)
    return end if clock.now_ns < end else None


async def expire_missed_close(broker: Broker, clock: MarketClock) -> int:
    """On the first reading: expire the session orders of a close this process did not see.

    The book reloaded at start holds every open order, yesterday's day orders too
    when execution was down over the close. Orders carry this host's time and the
    market clock may run offset from it (replay), so the close moves onto the host's
    time first.
    """
    if clock.previous_close_ns is None:
        return 0
    host_offset_ns = time.time_ns() - clock.now_ns
    return await broker.expire_missed_close(
        clock.previous_close_ns + host_offset_ns,
        post_market_ended=clock.now_ns >= post_session_end_ns(clock.previous_close_ns),
    )


async def watch_session(broker: Broker, poll_s: float) -> None:
    """Follow the market clock: the opening auction at the open; at the close the closing
    auction and day orders' expiry; extended-hours day orders when the post-market ends;
    gtd orders at their date; and the session phase that says which orders ticks may fill.

    Every decision reads the market clock (market data's, offset in replay), never this
    host's, so replaying a session expires and phases orders as the live one would. The
    first reading also expires the orders of a close that passed while execution was down.
    """
    close_at: int | None = None
    post_market_end: int | None = None
    was_open: bool | None = None
    while True:
        try:
            clock = await broker.market.clock()
            if was_open is None:
                expired = await expire_missed_close(broker, clock)
                if expired:
                    log.info("orders of a missed close expired", extra={"expired_orders": expired})
                if not clock.is_open:
                    post_market_end = resumed_post_market_end(clock)
            await broker.expire_due(clock.now_ns)
            if close_at is not None and clock.now_ns >= close_at:
                expired = await broker.expire_day_orders()
                await broker.snapshot_equity(session_close=True)
                log.info("session closed", extra={"expired_orders": expired})
                post_market_end = post_session_end_ns(close_at)
                close_at = None
            if post_market_end is not None and clock.now_ns >= post_market_end:
                await broker.expire_day_orders(post_market=True)
                post_market_end = None
            if clock.is_open and was_open is False:
                await broker.open_session()
            was_open = clock.is_open
            if clock.is_open:
                close_at = clock.next_close_ns
            session = SessionClock(
                clock.now_ns, clock.is_open, clock.next_open_ns, clock.next_close_ns
            )
            await broker.set_phase(session_phase(session, post_market_end))
            change = next_change_ns(session, post_market_end)
            wait = (
                poll_s if change is None else min(poll_s, max(0.05, (change - clock.now_ns) / 1e9))
            )
        except DomainError as exc:
            # Expected while market data starts or restarts; the message says enough.
            log.warning("market clock unavailable: %s", exc.message)
            # Until the first reading no order trades (the phase is unknown): retry soon.
            wait = poll_s if was_open is not None else min(poll_s, FIRST_READING_RETRY_S)
        await asyncio.sleep(wait)


async def save_water_marks(broker: Broker, every_s: float) -> None:
    """Persist moved trailing-stop water marks: at most one batch per interval, each order once."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await broker.save_water_marks()
        except Exception:
            log.warning("water marks not saved; retrying next interval", exc_info=True)


async def snapshot_equity(broker: Broker, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        started = time.monotonic()
        try:
            count = await broker.snapshot_equity()
            log.debug(
                "equity snapshot", extra={"accounts": count, "took_s": time.monotonic() - started}
            )
        except DomainError:
            log.warning("equity snapshot skipped", exc_info=True)


async def setup(context: ServiceContext[ExecutionConfig]) -> None:
    config = context.config
    risk_channel = open_channel(config.risk_addr)
    market_channel = open_channel(config.marketdata_addr)
    risk = RiskGate(
        risk_channel,
        config.risk_timeout_s,
        stream_threshold=config.risk_stream_threshold,
        max_batch=config.risk_stream_batch,
        busy_interval_s=config.risk_stream_busy_s,
        max_unanswered=config.risk_stream_unanswered,
    )
    engine = FillEngine(fill_model(config))
    # Until the session watcher's first clock reading, no order trades: the session
    # may be closed, and an order that waits loses nothing (the next tick fills it).
    engine.set_phase(SessionPhase.CLOSED)
    broker = Broker(
        context.pool,
        engine,
        MarketReference(market_channel),
        RiskCheck(risk),
        AccountSettings(config.opening_cash, config.margin_multiplier),
        SQL_STORES,
    )
    reloaded = await broker.reload()
    log.info("book reloaded", extra={"open_orders": reloaded})
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(
        ExecutionServicer(broker), context.server
    )
    ticks = context.consumer(config.fill_engine_group, [TOPIC_TICKS], from_beginning=False)
    context.spawn("fill-engine", ticks.run(broker.on_ticks))
    context.spawn("book-repair", broker.run_repairs())
    ORDERS_OUT_OF_BOOK.set_function(lambda: len(broker.live.unwritten))
    context.spawn("session-clock", watch_session(broker, config.clock_poll_s))
    context.spawn("equity-snapshots", snapshot_equity(broker, config.equity_snapshot_s))
    context.spawn("water-marks", save_water_marks(broker, config.water_mark_flush_s))

    async def close() -> None:
        with contextlib.suppress(Exception):
            await broker.save_water_marks()
        with contextlib.suppress(Exception):
            await risk.close()
            await risk_channel.close(None)
            await market_channel.close(None)

    context.on_shutdown(close)


SPEC = outbox_service(
    name="execution",
    config_type=ExecutionConfig,
    service=SERVICE,
    methods_by_scope={SCOPE_TRADE: TRADE_METHODS, SCOPE_READ: READ_METHODS},
    setup=setup,
    main_file=__file__,
)

if __name__ == "__main__":
    sys.exit(run_service(SPEC))
