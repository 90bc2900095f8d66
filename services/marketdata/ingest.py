"""The ingest consumer: ticks from Kafka into PostgreSQL, Redis and bars, restart-exact.

One transaction per consumed batch writes the batch's new ticks (COPY into the
day-partitioned table), every bar the batch touched (closed ones final, open ones
with their running sums), the symbols' bar clocks, closed-bar events into the
outbox, and the highest sequence applied per partition. Because all of that
commits together, a crash at any point leaves the database at a batch boundary,
and the replayed batch is recognised by its sequences (at or below the saved
high-water mark of its partition) and skipped: nothing is lost, nothing counted
twice, and bars rebuilt after a restart equal the bars built without one.

Several processes may share the consumer group (the partitions are split between
them and move on a rebalance). Each transaction locks its partitions' progress rows
and checks them against what this process last wrote: if another process applied
ticks of those partitions meanwhile, this process's bar state is stale, so it
reloads it from the database and applies the batch again.

After the commit the latest quote per symbol goes to Redis (a hash of serialized
`Quote` messages). Closed bars reach stream subscribers of every process through
`marketdata.bars.v1`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import asyncpg
from prometheus_client import Counter
from redis import asyncio as aioredis

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from cift.runtime import outbox
from cift.runtime.kafka import TOPIC_BARS, TOPIC_TICKS, Event
from services.marketdata import store
from services.marketdata.bars import Bar, BarBuilder
from services.marketdata.events import NS_PER_SECOND, bar_event_id, bar_pb

log = logging.getLogger(__name__)

LATEST_QUOTES_KEY = "cift:marketdata:latest_quotes"
TICKS_INGESTED = Counter("cift_marketdata_ingest_ticks_total", "Ticks written to PostgreSQL.")
TICKS_SKIPPED = Counter(
    "cift_marketdata_ingest_replayed_total", "Replayed ticks recognised and skipped."
)
STALE_RELOADS = Counter(
    "cift_marketdata_ingest_stale_reloads_total",
    "Batches re-applied after another process had advanced their partitions (rebalance).",
)
BARS_CLOSED = Counter(
    "cift_marketdata_bars_closed_total", "Bars closed and published.", ["timeframe"]
)


class _StaleState(Exception):
    """Another process advanced a partition this process holds bar state for."""


class Ingest:
    """Applies batches of tick events; call `on_ticks` from the consumer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        *,
        partition_days: int,
        topic: str = TOPIC_TICKS,
        bars_topic: str = TOPIC_BARS,
        holds: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.partition_days = partition_days
        self.topic = topic
        self.bars_topic = bars_topic
        self.builder = BarBuilder()
        self._progress: dict[int, int] | None = None
        self._partitions: set[int] = set()
        self._last_trade: dict[str, float] = {}
        # The latest quote per symbol and the partition it came from, as written to
        # Redis: this process's servicer answers GetLatestQuote from it without a Redis
        # round trip while the partition is still this process's (see `local_quote`).
        self._latest: dict[str, tuple[int, marketdata_pb2.Quote]] = {}
        self._holds = holds or (lambda _topic, _partition: True)

    async def _load(self) -> None:
        async with self.pool.acquire() as conn:
            open_bars, clocks = await store.load_open_state(conn)
            self._progress = await store.load_progress(conn, self.topic)
        self.builder = BarBuilder()
        self.builder.restore(open_bars, clocks)
        log.info(
            "ingest resumed",
            extra={"open_bars": len(open_bars), "symbols": len(clocks), "progress": self._progress},
        )

    async def on_ticks(self, events: list[Event]) -> None:
        for attempt in range(2):
            if self._progress is None:
                await self._load()
            try:
                await self._apply(events)
                return
            except _StaleState:
                # Another process applied some of these partitions: start from its state.
                STALE_RELOADS.inc()
                self._progress = None
                if attempt:
                    raise
            except BaseException:
                # The transaction rolled back but the in-memory builder moved on: reload
                # from the database before the consumer retries the batch.
                self._progress = None
                raise

    async def _apply(self, events: list[Event]) -> None:
        assert self._progress is not None
        progress = dict(self._progress)
        rows: list[tuple[object, ...]] = []
        closed: list[Bar] = []
        touched: dict[str, int] = {}
        latest: dict[str, tuple[int, marketdata_pb2.Quote]] = {}
        builder = self.builder
        skipped = 0
        low_ts = high_ts = None
        for event in events:
            message = event.message
            assert isinstance(message, events_pb2.TickEvent)
            if message.HasField("quote"):
                quote = message.quote
                sequence = quote.sequence
                if sequence <= progress.get(event.partition, 0):
                    skipped += 1
                    continue
                progress[event.partition] = sequence
                symbol = quote.symbol
                stamp = quote.timestamp
                ts_ns = stamp.seconds * NS_PER_SECOND + stamp.nanos
                rows.append(
                    (
                        sequence,
                        ts_ns,
                        symbol,
                        store.KIND_QUOTE,
                        quote.bid,
                        quote.ask,
                        quote.bid_size,
                        quote.ask_size,
                        None,
                        None,
                    )
                )
                closed += builder.advance(symbol, ts_ns)
                latest[symbol] = (event.partition, quote)
            else:
                trade = message.trade
                sequence = trade.sequence
                if sequence <= progress.get(event.partition, 0):
                    skipped += 1
                    continue
                progress[event.partition] = sequence
                symbol = trade.symbol
                stamp = trade.timestamp
                ts_ns = stamp.seconds * NS_PER_SECOND + stamp.nanos
                price = trade.price
                rows.append(
                    (
                        sequence,
                        ts_ns,
                        symbol,
                        store.KIND_TRADE,
                        None,
                        None,
                        None,
                        None,
                        price,
                        trade.size,
                    )
                )
                closed += builder.on_trade(symbol, ts_ns, price, trade.size)
                self._last_trade[symbol] = price
            touched[symbol] = ts_ns
            if low_ts is None or ts_ns < low_ts:
                low_ts = ts_ns
            if high_ts is None or ts_ns > high_ts:
                high_ts = ts_ns
        if skipped:
            TICKS_SKIPPED.inc(skipped)
        if not rows:
            return
        assert low_ts is not None and high_ts is not None
        width = store.NS_PER_DAY * self.partition_days
        first, _ = store.partition_bounds(low_ts, self.partition_days)
        starts = set(range(first, high_ts + 1, width))
        open_bars = [bar for bar in builder.open_bars() if bar.symbol in touched]
        clocks = builder.clocks()
        async with self.pool.acquire() as conn, conn.transaction():
            mine = sorted({event.partition for event in events})
            locked = await store.lock_progress(conn, self.topic, mine)
            if any(locked.get(p, 0) != self._progress.get(p, 0) for p in mine):
                raise _StaleState
            new_partitions = starts - self._partitions
            if new_partitions:
                await store.ensure_partitions(conn, new_partitions, self.partition_days)
            await store.copy_ticks(conn, rows)
            await store.upsert_bars(
                conn, closed + open_bars, [True] * len(closed) + [False] * len(open_bars)
            )
            await store.save_clocks(conn, {s: clocks[s] for s in touched})
            for bar in closed:
                await outbox.enqueue(
                    conn,
                    self.bars_topic,
                    bar.symbol,
                    events_pb2.BarEvent(bar=bar_pb(bar)),
                    event_id=bar_event_id(bar),
                )
            # Only this batch's partitions: the others' rows belong to whichever process
            # holds them now (writing them would regress their progress and deadlock).
            await store.save_progress(
                conn, self.topic, {p: progress[p] for p in mine if p in progress}
            )
        self._partitions |= starts
        self._progress = progress
        TICKS_INGESTED.inc(len(rows))
        if latest:
            await self._store_latest(latest.values())
        for bar in closed:
            BARS_CLOSED.labels(bar.timeframe).inc()

    def local_quote(self, symbol: str) -> marketdata_pb2.Quote | None:
        """The symbol's latest quote if this process still ingests its partition.

        After a rebalance hands the partition to another process, newer quotes land
        only in Redis, so this one's copy must no longer answer.
        """
        entry = self._latest.get(symbol)
        if entry is None or not self._holds(self.topic, entry[0]):
            return None
        return entry[1]

    async def _store_latest(self, quotes: Iterable[tuple[int, marketdata_pb2.Quote]]) -> None:
        mapping: dict[str | bytes, bytes] = {}
        fresh: list[tuple[int, marketdata_pb2.Quote]] = []
        for partition, quote in quotes:
            last = self._last_trade.get(quote.symbol)
            if last is not None and last != quote.last:
                # A copy, venue fields and all: the consumed message stays as it came.
                updated = marketdata_pb2.Quote()
                updated.CopyFrom(quote)
                updated.last = last
                quote = updated
            mapping[quote.symbol] = quote.SerializeToString()
            fresh.append((partition, quote))
        await self.redis.hset(LATEST_QUOTES_KEY, mapping=mapping)  # type: ignore[misc,arg-type]
        for partition, quote in fresh:
            self._latest[quote.symbol] = (partition, quote)
