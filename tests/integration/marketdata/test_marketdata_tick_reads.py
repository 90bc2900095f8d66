"""The readers of ticks stay on an index after migration 003 dropped the per-tick btree.

GetTrades reads through the partial btree on trades; order-flow indicators read a
symbol's quotes through the BRIN over (symbol, ts_ns). That BRIN can only skip other
symbols' pages because the ingest writes each batch grouped by symbol and summarizes
the pages it wrote: both are checked here on the plan PostgreSQL runs, with the heap
pages a one-symbol read touches, and the rows read are checked against the ticks fed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cift.marketdata.v1 import marketdata_pb2
from cift.runtime.kafka import Records
from services.marketdata import store
from services.marketdata.events import tick_event_bytes
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.ingest import Ingest
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from tests.integration.marketdata.marketdata_helpers import Scenario

pytestmark = pytest.mark.integration

TOPIC = "marketdata.ticks.reads-test"
START_NS = 1_704_205_800 * 1_000_000_000
BATCH = 4000


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in nodes(child))]


async def explain(conn: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    return nodes(json.loads(text)[0]["Plan"])


async def access_method(conn: Any, index: str) -> tuple[str, bool]:
    """(access method, partial?) of an index of the ticks table or a partition."""
    row = await conn.fetchrow(
        "SELECT a.amname, i.indpred IS NOT NULL AS partial FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE i.indexrelid = to_regclass($1)",
        index,
    )
    return str(row["amname"]), bool(row["partial"])


async def test_trades_and_quotes_are_read_through_their_indexes_and_one_symbols_pages(
    scenario: Scenario,
) -> None:
    simulator = Simulator(default_universe(), seed=5, rate_per_symbol=200.0, start_ns=START_NS)
    runner = FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.01)
    ticks = runner.stamp(simulator.next_events(6 * BATCH))
    symbols = sorted({t.symbol for t in ticks})
    symbol = symbols[len(symbols) // 2]
    async with scenario.running(marketdata_feed="none") as service:
        ingest = Ingest(
            service.pool,
            service.context.redis,
            partition_days=1,
            topic=TOPIC,
            bars_topic=scenario.bars_topic,
        )
        for n in range(0, len(ticks), BATCH):
            part = ticks[n : n + BATCH]
            await ingest.on_ticks(
                Records(TOPIC, [0] * len(part), [tick_event_bytes(t) for t in part])
            )
        async with service.pool.acquire() as conn:
            await conn.execute("ANALYZE ticks")
            pages = await conn.fetchval(
                "SELECT sum(relpages) FROM pg_class WHERE relname LIKE 'ticks_p%' AND relkind = 'r'"
            )
            start, end = ticks[0].timestamp.ToNanoseconds(), ticks[-1].timestamp.ToNanoseconds() + 1
            quote_plan = await explain(conn, store.QUOTES_BETWEEN_SQL, symbol, start, end, 10**6)
            trade_plan = await explain(
                conn, store.TRADES_PAGE_SQL, symbol, start, end, start - 1, 0, 50
            )
            quotes = await store.quotes_between(conn, symbol, start, end, 10**6)
            trades = await store.trades_page(conn, symbol, start, end, None, 10**6)
            quote_methods = {
                await access_method(conn, n["Index Name"]) for n in quote_plan if "Index Name" in n
            }
            trade_methods = {
                await access_method(conn, n["Index Name"]) for n in trade_plan if "Index Name" in n
            }

    assert quote_methods == {("brin", False)}
    heap = [n for n in quote_plan if n["Node Type"] == "Bitmap Heap Scan"]
    assert len(heap) == 1
    # Grouped by symbol and summarized, one symbol's quotes sit on a few pages per batch;
    # in arrival order (or unsummarized) every page would be read.
    read = heap[0]["Exact Heap Blocks"] + heap[0].get("Lossy Heap Blocks", 0)
    assert 0 < read * 3 < pages, (read, pages)
    assert trade_methods == {("btree", True)}
    assert any(n["Node Type"] == "Index Scan" for n in trade_plan)
    assert not any("Sort" in n["Node Type"] for n in trade_plan)

    own = [t for t in ticks if t.symbol == symbol]
    want_quotes = [
        (q.timestamp.ToNanoseconds(), q.bid, q.bid_size, q.ask, q.ask_size)
        for q in own
        if isinstance(q, marketdata_pb2.Quote)
    ]
    assert [tuple(r) for r in quotes] == want_quotes
    want_trades = [
        (t.sequence, t.timestamp.ToNanoseconds(), t.price, t.size)
        for t in own
        if isinstance(t, marketdata_pb2.Trade)
    ]
    assert [(seq, t.ts_ns, t.price, t.size) for seq, t in trades] == want_trades
