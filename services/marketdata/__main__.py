"""`python -m services.marketdata [serve|migrate|ingest]`: wiring only.

A process runs the gRPC servicer, a member of the ingest consumer group, and either
the feed task (simulator, replay, or a provider's live stream: exactly one such
process per deployment) or a relay that feeds its stream hub from `marketdata.ticks.v1`. The feed hands its
ticks straight to its own hub (lowest latency); every process relays closed bars
from `marketdata.bars.v1` to its StreamBars subscribers.

`backfill` pages a provider's REST history of bars and trades into the schema
(`cift marketdata backfill` runs it). `ingest` runs only another member of the ingest consumer group (plus health and
metrics): ingest is one core's work per process, and a heavy feed needs more
processes without each of them also relaying every tick to stream subscribers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cift.marketdata.v1 import events_pb2, marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.errors import InvalidArgument
from cift.runtime.identity import SCOPE_READ
from cift.runtime.interceptors import PUBLIC, RpcPolicy
from cift.runtime.server import Command, ServiceContext, ServiceSpec, run_service, serve
from cift.runtime.timestamps import NS_PER_S
from services.marketdata import store
from services.marketdata.clock import (
    MarketCalendar,
    build_calendar,
    clock_offset_ns,
    parse_dates,
)
from services.marketdata.config import FEED_KINDS, MarketDataConfig
from services.marketdata.feed import FeedRunner, ReplaySource, SimulatorSource, TickSource
from services.marketdata.ingest import Ingest
from services.marketdata.instruments import Universe, load_universe
from services.marketdata.providers import backfill_cli
from services.marketdata.providers.backoff import Backoff
from services.marketdata.providers.session import FeedHealth, LiveSource, ProviderFeed
from services.marketdata.providers.settings import PROVIDERS, chosen_symbols, provider_protocols
from services.marketdata.replay import load_replay_file
from services.marketdata.server import MarketDataServicer
from services.marketdata.sim_history import simulate_past, store_past
from services.marketdata.simulator import Simulator
from services.marketdata.streams import StreamHub

log = logging.getLogger(__name__)

SERVICE = marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name
READ = RpcPolicy(scope=SCOPE_READ)
# Reference data (instruments, the clock, latest quotes) is the same for every
# caller and is read by other services' background tasks (execution's session
# clock and equity marks), which act for no user. The gateway still requires a
# credential from outside clients; inside the mesh these need none.
REFERENCE_DATA = frozenset(
    {"ListInstruments", "GetInstrument", "GetClock", "GetLatestQuote", "GetLatestQuotes"}
)
POLICIES = {
    f"/{SERVICE}/{method.name}": PUBLIC if method.name in REFERENCE_DATA else READ
    for method in marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"].methods
}
# The consumer decodes TickEvent by its schema header, which needs its module loaded.
TICK_EVENT = events_pb2.TickEvent
# The provider feed's own entry in grpc.health.v1.Health (the API serves regardless).
FEED_HEALTH = "cift.marketdata.v1.ProviderFeed"


def calendar_of(config: MarketDataConfig) -> MarketCalendar:
    return build_calendar(
        config.marketdata_calendar,
        extra_holidays=parse_dates(
            config.marketdata_extra_holidays, "CIFT_MARKETDATA_EXTRA_HOLIDAYS"
        ),
        removed_holidays=parse_dates(
            config.marketdata_removed_holidays, "CIFT_MARKETDATA_REMOVED_HOLIDAYS"
        ),
    )


def provider_feed(
    config: MarketDataConfig, universe: Universe, on_health: Callable[[FeedHealth], None]
) -> ProviderFeed:
    """The live stream of the provider CIFT_MARKETDATA_FEED names (checked before connecting)."""
    protocol = provider_protocols(config, config.marketdata_feed).stream
    return ProviderFeed(
        protocol,
        chosen_symbols(config.marketdata_symbols, universe),
        LiveSource(config.marketdata_feed_buffer, protocol.name),
        Backoff(config.marketdata_feed_backoff_s, config.marketdata_feed_backoff_max_s),
        on_health=on_health,
    )


def tick_source(
    config: MarketDataConfig,
    universe: Universe,
    *,
    prepared: SimulatorSource | None = None,
) -> TickSource | None:
    """The simulator (`prepared_simulator`'s, else one starting now) or a replay file;
    None for a provider feed or none."""
    if config.marketdata_feed not in FEED_KINDS:
        raise InvalidArgument(f"CIFT_MARKETDATA_FEED must be one of {', '.join(FEED_KINDS)}.")
    if config.marketdata_feed == "simulator":
        return prepared or SimulatorSource(new_simulator(config, universe, time.time_ns()))
    if config.marketdata_feed == "replay":
        if not config.marketdata_replay_path:
            raise InvalidArgument("The replay feed needs CIFT_MARKETDATA_REPLAY_PATH.")
        ticks = load_replay_file(
            config.marketdata_replay_path, symbol=config.marketdata_replay_symbol or None
        )
        unknown = {t.symbol for t in ticks} - set(universe.symbols)
        if unknown:
            raise InvalidArgument(
                f"The replay file has symbols outside the universe: {sorted(unknown)}."
            )
        return ReplaySource(
            ticks,
            speed=config.marketdata_replay_speed,
            start_ns=time.time_ns(),
            loop=config.marketdata_replay_loop,
        )
    return None


def new_simulator(
    config: MarketDataConfig,
    universe: Universe,
    start_ns: int,
    stored_prices: Mapping[str, float] | None = None,
) -> Simulator:
    return Simulator(
        universe,
        seed=config.marketdata_seed,
        rate_per_symbol=config.marketdata_rate,
        trade_probability=config.marketdata_trade_probability,
        start_ns=start_ns,
        start_prices=stored_prices,
    )


async def prepared_simulator(
    ctx: ServiceContext[MarketDataConfig], universe: Universe
) -> SimulatorSource:
    """The simulator, going on from the stored prices, or on an empty store after its past.

    Onto stored ticks it starts now from their last prices, without history: a
    simulated past would land on minutes that already have bars, and starting from
    the instruments' prices would jump back. Call it before the ingest starts: the
    ingest's bar builder resumes from the open bars the past leaves.
    """
    config = ctx.config
    if config.marketdata_simulator_history_s < 0:
        raise InvalidArgument("CIFT_MARKETDATA_SIMULATOR_HISTORY_S must not be negative.")
    async with ctx.pool.acquire() as conn:
        stored_prices = await store.last_prices(conn, universe.symbols)
    now_ns = time.time_ns()
    if stored_prices or not config.marketdata_simulator_history_s:
        if stored_prices:
            log.info(
                "the simulator goes on from the stored ticks' last prices, with no history",
                extra={"symbols": len(stored_prices)},
            )
        return SimulatorSource(new_simulator(config, universe, now_ns, stored_prices))
    simulator = new_simulator(
        config, universe, now_ns - int(config.marketdata_simulator_history_s * NS_PER_S)
    )
    # A second or two of CPU for an hour: off the event loop, whose health checks answer.
    past = await asyncio.to_thread(simulate_past, simulator, now_ns)
    async with ctx.pool.acquire() as conn:
        await store_past(conn, past, config.marketdata_tick_partition_days)
    log.info(
        "simulated past stored",
        extra={
            "ticks": past.ticks,
            "bars": len(past.bars),
            "seconds": (time.time_ns() - now_ns) / 1e9,
        },
    )
    return SimulatorSource(simulator, past.after)


@dataclass
class MarketDataApp:
    """What setup built, kept for tests and benchmarks that run the service in-process."""

    hub: StreamHub | None = None
    ingest: Ingest | None = None
    feed: FeedRunner | None = None
    servicer: MarketDataServicer | None = None
    provider: ProviderFeed | None = None


APP = MarketDataApp()


def start_ingest(ctx: ServiceContext[MarketDataConfig]) -> Ingest:
    """Join the ingest consumer group; every process that ingests does it the same way."""
    config = ctx.config
    consumer = ctx.consumer(
        config.marketdata_ingest_group,
        [config.marketdata_ticks_topic],
        from_beginning=True,
        max_batch=config.marketdata_ingest_batch,
    )
    ingest = Ingest(
        ctx.pool,
        ctx.redis,
        partition_days=config.marketdata_tick_partition_days,
        topic=config.marketdata_ticks_topic,
        bars_topic=config.marketdata_bars_topic,
        holds=consumer.holds,
    )
    ctx.spawn("marketdata-ingest", consumer.run_records(ingest.on_ticks))
    return ingest


async def setup(ctx: ServiceContext[MarketDataConfig]) -> None:
    config = ctx.config
    universe = load_universe(config.marketdata_universe_file or None)
    hub = StreamHub(
        capacity=config.marketdata_stream_ring, max_subscribers=config.marketdata_max_streams
    )
    topic = config.marketdata_ticks_topic
    prepared = None
    if config.marketdata_feed == "simulator":
        prepared = await prepared_simulator(ctx, universe)
    ingest = start_ingest(ctx)
    servicer = MarketDataServicer(
        pool=ctx.pool,
        redis=ctx.redis,
        universe=universe,
        calendar=calendar_of(config),
        clock_offset_ns=clock_offset_ns(
            config.marketdata_clock_start, time.time_ns(), "CIFT_MARKETDATA_CLOCK_START"
        ),
        hub=hub,
        stream_batch=config.marketdata_stream_batch,
        heartbeat_s=config.marketdata_stream_heartbeat_s,
        local_quote=ingest.local_quote,
    )
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(servicer, ctx.server)
    # Stream subscribers of this process see every closed bar, whichever process
    # ingested it, and every tick even when the feed runs elsewhere. The groups are
    # per process (each process needs all partitions) and start at the live end.
    process_id = uuid.uuid4().hex[:12]
    bars_relay = ctx.consumer(
        f"marketdata-bars-{process_id}", [config.marketdata_bars_topic], from_beginning=False
    )
    ctx.spawn("marketdata-bars-relay", bars_relay.run(hub.relay_bars))
    source = tick_source(config, universe, prepared=prepared)
    provider = None
    if config.marketdata_feed in PROVIDERS:

        def report(health: FeedHealth) -> None:
            ctx.report_health(FEED_HEALTH, health.serving)

        provider = provider_feed(config, universe, report)
        ctx.report_health(FEED_HEALTH, False)
        ctx.spawn("marketdata-provider", provider.run())
        source = provider.source
    feed = None
    if source is None:
        ticks_relay = ctx.consumer(
            f"marketdata-streams-{process_id}", [topic], from_beginning=False
        )
        ctx.spawn("marketdata-ticks-relay", ticks_relay.run(hub.relay_ticks))
    else:
        feed = FeedRunner(
            source,
            ctx.producer,
            hub.publish_ticks,
            interval_s=config.marketdata_feed_interval_s,
            topic=topic,
        )
        ctx.spawn("marketdata-feed", feed.run())
    APP.hub, APP.ingest, APP.feed, APP.servicer = hub, ingest, feed, servicer
    APP.provider = provider


SPEC = ServiceSpec(
    name="marketdata",
    config_type=MarketDataConfig,
    service_names=(SERVICE,),
    policies=POLICIES,
    setup=setup,
    migrations_dir=Path(__file__).parent / "migrations",
    uses_redis=True,
    uses_kafka=True,
    relay_outbox=True,
)


async def setup_ingest_only(ctx: ServiceContext[MarketDataConfig]) -> None:
    start_ingest(ctx)


# The same schema and outbox (closed bars leave through it), none of the API.
INGEST_SPEC = replace(SPEC, service_names=(), policies={}, setup=setup_ingest_only)


async def run_ingest_only(config: MarketDataConfig, _args: argparse.Namespace) -> int:
    await serve(INGEST_SPEC, config)
    return 0


COMMANDS = {
    "backfill": Command(
        help="page a provider's REST history of bars and trades into the schema (resumable)",
        add_arguments=backfill_cli.add_arguments,
        run=backfill_cli.run_backfill,
    ),
    "ingest": Command(
        help="run one more member of the ingest consumer group (no API, no feed)",
        add_arguments=lambda _parser: None,
        run=run_ingest_only,
    ),
}

if __name__ == "__main__":
    sys.exit(run_service(SPEC, commands=COMMANDS))
