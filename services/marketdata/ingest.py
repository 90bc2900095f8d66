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
from typing import cast

import asyncpg
import numpy as np
import numpy.typing as npt
from prometheus_client import Counter
from redis import asyncio as aioredis

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from cift.runtime import outbox
from cift.runtime.kafka import TOPIC_BARS, TOPIC_TICKS, Records
from services.marketdata import store
from services.marketdata.bars import Bar, BarBuilder
from services.marketdata.bars_kernel import NO_BUCKET, ticks_that_move_bars
from services.marketdata.events import bar_event_id, bar_pb
from services.marketdata.tick_columns import (
    MALFORMED,
    TRADE,
    keep_new,
    symbol_codes,
    tick_columns,
)
from services.marketdata.tick_copy import copy_payload

log = logging.getLogger(__name__)

LATEST_QUOTES_KEY = "cift:marketdata:latest_quotes"
TICKS_INGESTED = Counter("cift_marketdata_ingest_ticks_total", "Ticks written to PostgreSQL.")
TICKS_SKIPPED = Counter(
    "cift_marketdata_ingest_replayed_total", "Replayed ticks recognised and skipped."
)
TICKS_MALFORMED = Counter(
    "cift_marketdata_ingest_malformed_total", "Tick records that are not a TickEvent, skipped."
)
STALE_RELOADS = Counter(
    "cift_marketdata_ingest_stale_reloads_total",
    "Batches re-applied after another process had advanced their partitions (rebalance).",
)
BARS_CLOSED = Counter(
    "cift_marketdata_bars_closed_total", "Bars closed and published.", ["timeframe"]
)


def by_symbol(
    raw_names: list[bytes], codes: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The order that writes a batch's ticks grouped by symbol, symbols in byte order
    (PostgreSQL's C collation), each symbol's ticks in time order.

    Quotes are found through a BRIN index over (symbol, ts_ns) with one heap page per
    range (migration 003): grouped this way, a page holds one or two neighbouring
    symbols, so a one-symbol read skips the others' pages. In arrival order every page
    would hold every symbol and the index could skip nothing.
    """
    rank = np.empty(len(raw_names), dtype=np.int64)
    rank[sorted(range(len(raw_names)), key=raw_names.__getitem__)] = np.arange(len(raw_names))
    return np.lexsort((ts, rank[codes]))


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
        # Symbol bytes as read from the records -> one shared str per symbol.
        self._names: dict[bytes, str] = {}

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

    async def on_ticks(self, records: Records) -> None:
        """Apply one fetch of the tick topic (`EventConsumer.run_records` hands it over)."""
        for attempt in range(2):
            if self._progress is None:
                await self._load()
            try:
                await self._apply(records)
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

    def _names_of(self, raw_names: list[bytes]) -> list[str | None]:
        """Each distinct symbol as one shared str (None where it is not UTF-8, or holds
        a NUL, which no PostgreSQL text can)."""
        names = self._names
        out: list[str | None] = []
        for raw in raw_names:
            name = names.get(raw)
            if name is None:
                try:
                    name = raw.decode()
                except UnicodeDecodeError:
                    name = None
                if name is not None and "\x00" not in name:
                    names[raw] = name
                else:
                    name = None
            out.append(name)
        return out

    async def _apply(self, records: Records) -> None:
        assert self._progress is not None
        if not records.values:
            return
        columns = tick_columns(records.values)
        kind = columns.kind
        all_codes, raw_names = symbol_codes(columns)
        code_names = self._names_of(raw_names)
        for code, name in enumerate(code_names):
            if name is None:
                kind[all_codes == code] = MALFORMED
        malformed = int(np.count_nonzero(kind == MALFORMED))
        if malformed:
            TICKS_MALFORMED.inc(malformed)
            log.error(
                "skipping undecodable tick records",
                extra={"topic": records.topic, "records": malformed},
            )
        mine = sorted(set(records.partitions))
        partition_index = np.searchsorted(
            np.array(mine, dtype=np.int64), np.array(records.partitions, dtype=np.int64)
        )
        marks = np.array([self._progress.get(p, 0) for p in mine], dtype=np.int64)
        keep = np.empty(len(kind), dtype=np.bool_)
        keep_new(partition_index, columns.sequence, kind, marks, keep)
        kept = np.flatnonzero(keep)
        skipped = len(kind) - malformed - len(kept)
        if skipped:
            TICKS_SKIPPED.inc(skipped)
        if not len(kept):
            return
        progress = dict(self._progress)
        for p, mark in zip(mine, marks.tolist(), strict=True):
            if p in progress or mark > 0:
                progress[p] = mark
        kinds = kind[kept]
        is_trade = kinds == TRADE
        values = columns.values[kept]
        ts = columns.ts_ns[kept]
        codes = all_codes[kept]
        # Kept records are not MALFORMED, so every code here names a valid symbol.
        names = cast(list[str], code_names)
        first_value = values[:, 0]
        second_value = values[:, 1]
        payload = copy_payload(columns, kept[by_symbol(raw_names, codes, ts)])
        builder = self.builder
        # Only trades and the quotes that end a symbol's finest bucket go through the
        # builder one by one; every other quote only moves its symbol's clock, done
        # once per symbol below with the batch's newest time (the same end state).
        bucket_end = np.array(
            [NO_BUCKET if (end := builder.bucket_end(name)) is None else end for name in names],
            dtype=np.int64,
        )
        needed = np.empty(len(kept), dtype=np.bool_)
        newest_ns = np.full(len(names), NO_BUCKET, dtype=np.int64)
        last_quote = np.full(len(names), -1, dtype=np.int64)
        ticks_that_move_bars(
            codes, is_trade, ts, bucket_end, builder.finest_ns, needed, newest_ns, last_quote
        )
        closed: list[Bar] = []
        advance = builder.advance
        on_trade = builder.on_trade
        last_trade = self._last_trade
        step = np.flatnonzero(needed)
        for trade, code, ts_ns, price, size in zip(
            is_trade[step].tolist(),
            codes[step].tolist(),
            ts[step].tolist(),
            first_value[step].tolist(),
            second_value[step].tolist(),
            strict=True,
        ):
            symbol = names[code]
            if trade:
                ended = on_trade(symbol, ts_ns, price, size)
                last_trade[symbol] = price
            else:
                ended = advance(symbol, ts_ns)
            if ended:
                closed += ended
        present = np.flatnonzero(newest_ns != NO_BUCKET).tolist()
        for code, newest in zip(present, newest_ns[present].tolist(), strict=True):
            # Below the symbol's bucket end (the kernel's invariant): closes nothing.
            closed += advance(names[code], newest)
        touched = {names[code] for code in present}
        latest: dict[str, tuple[int, marketdata_pb2.Quote]] = {}
        kept_records = kept.tolist()
        for code, n in enumerate(last_quote.tolist()):
            if n >= 0:
                r = kept_records[n]
                tick = events_pb2.TickEvent.FromString(records.values[r])
                latest[names[code]] = (records.partitions[r], tick.quote)
        low_ts = int(ts.min())
        high_ts = int(ts.max())
        width = store.NS_PER_DAY * self.partition_days
        first, _ = store.partition_bounds(low_ts, self.partition_days)
        starts = set(range(first, high_ts + 1, width))
        open_bars = [bar for bar in builder.open_bars() if bar.symbol in touched]
        clocks = builder.clocks()
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await store.lock_progress(conn, self.topic, mine)
            if any(locked.get(p, 0) != self._progress.get(p, 0) for p in mine):
                raise _StaleState
            new_partitions = starts - self._partitions
            if new_partitions:
                await store.ensure_partitions(conn, new_partitions, self.partition_days)
            await store.copy_tick_payload(conn, payload)
            # Only this batch's partitions' progress: the others' rows belong to whichever
            # process holds them now (writing them would regress their progress and deadlock).
            await store.save_ingest_state(
                conn,
                closed + open_bars,
                [True] * len(closed) + [False] * len(open_bars),
                {s: clocks[s] for s in touched},
                self.topic,
                {p: progress[p] for p in mine if p in progress},
            )
            await outbox.enqueue_many(
                conn,
                self.bars_topic,
                [
                    (bar.symbol, events_pb2.BarEvent(bar=bar_pb(bar)), bar_event_id(bar))
                    for bar in closed
                ],
            )
        self._partitions |= starts
        self._progress = progress
        TICKS_INGESTED.inc(len(kept))
        async with self.pool.acquire() as conn:
            await store.summarize_ticks(conn, starts)
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
