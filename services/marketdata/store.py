"""SQL of the market data schema: ticks, bars, bar clocks and ingest progress. Nothing else."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import asyncpg

from services.marketdata.bars import TIMEFRAMES, Bar
from services.marketdata.ticks import Trade

KIND_QUOTE = 1
KIND_TRADE = 2
NS_PER_DAY = 86_400 * 1_000_000_000
TICK_COLUMNS = (
    "sequence",
    "ts_ns",
    "symbol",
    "kind",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "price",
    "size",
)


def partition_bounds(ts_ns: int, days: int) -> tuple[int, int]:
    """[start, end) of the ticks partition holding `ts_ns` with `days` days per partition."""
    width = NS_PER_DAY * days
    start = ts_ns - ts_ns % width
    return start, start + width


def partition_name(start_ns: int) -> str:
    day = dt.datetime.fromtimestamp(start_ns // 1_000_000_000, dt.UTC).date()
    return f"ticks_p{day:%Y%m%d}" if start_ns >= 0 else f"ticks_n{-start_ns}"


async def ensure_partitions(conn: asyncpg.Connection, starts: Iterable[int], days: int) -> None:
    for start in sorted(set(starts)):
        name = partition_name(start)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF ticks "
            f"FOR VALUES FROM ({start}) TO ({start + NS_PER_DAY * days})"
        )


async def summarize_ticks(conn: asyncpg.Connection, starts: Iterable[int]) -> int:
    """Summarize the pages written since the last call in the BRIN index of each ticks
    partition starting at `starts`; returns the page ranges summarized.

    Quote reads go through that BRIN index (migration 003), and a page it has not
    summarized is read by every query: summarizing after each batch keeps reads of
    recent quotes narrow. Best effort (the SQL function skips a partition whose
    summarizing lock another process or autovacuum holds); correctness never depends
    on it.
    """
    names = [partition_name(start) for start in sorted(set(starts))]
    return int(await conn.fetchval("SELECT summarize_ticks($1::text[])", names))


async def copy_ticks(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk-write tick rows (columns of TICK_COLUMNS) with COPY."""
    if rows:
        await conn.copy_records_to_table("ticks", records=rows, columns=TICK_COLUMNS)


# Upserts of bars, bar clocks and ingest progress from arrays, as statement templates:
# each runs alone, and the ingest runs all three as one statement (one round trip).
_BARS_UPSERT = """
    INSERT INTO bars (symbol, timeframe, start_ns, open, high, low, close, volume, notional,
                      trade_count, closed)
    SELECT * FROM unnest(${0}::text[], ${1}::text[], ${2}::bigint[], ${3}::float8[], ${4}::float8[],
                         ${5}::float8[], ${6}::float8[], ${7}::float8[], ${8}::float8[],
                         ${9}::bigint[], ${10}::bool[])
    ON CONFLICT (symbol, timeframe, start_ns) DO UPDATE SET
        open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        volume = EXCLUDED.volume, notional = EXCLUDED.notional,
        trade_count = EXCLUDED.trade_count, closed = EXCLUDED.closed"""
_CLOCKS_UPSERT = """
    INSERT INTO bar_clocks (symbol, clock_ns) SELECT * FROM unnest(${0}::text[], ${1}::bigint[])
    ON CONFLICT (symbol) DO UPDATE SET clock_ns = EXCLUDED.clock_ns"""
_PROGRESS_UPSERT = """
    INSERT INTO ingest_progress (topic, partition, sequence)
    SELECT ${0}, * FROM unnest(${1}::int[], ${2}::bigint[])
    ON CONFLICT (topic, partition) DO UPDATE SET sequence = EXCLUDED.sequence"""


def _numbered(template: str, first: int, count: int) -> str:
    """`template` with its placeholders ${0}..${count-1} numbered from $first on."""
    return template.format(*range(first, first + count))


def _bar_arrays(bars: Sequence[Bar], closed: Sequence[bool]) -> list[list[Any]]:
    return [
        [b.symbol for b in bars],
        [b.timeframe for b in bars],
        [b.start_ns for b in bars],
        [b.open for b in bars],
        [b.high for b in bars],
        [b.low for b in bars],
        [b.close for b in bars],
        [b.volume for b in bars],
        [b.notional for b in bars],
        [b.trade_count for b in bars],
        list(closed),
    ]


async def copy_tick_payload(conn: asyncpg.Connection, payload: bytes) -> None:
    """Bulk-write ticks already in binary COPY format (columns of TICK_COLUMNS)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield payload

    await conn.copy_to_table("ticks", source=chunks(), columns=TICK_COLUMNS, format="binary")


async def upsert_bars(
    conn: asyncpg.Connection, bars: Sequence[Bar], closed: Sequence[bool]
) -> None:
    """Write bars; writing the same bar again (a replay) leaves the same row."""
    if not bars:
        return
    await conn.execute(_numbered(_BARS_UPSERT, 1, 11), *_bar_arrays(bars, closed))


async def save_clocks(conn: asyncpg.Connection, clocks: dict[str, int]) -> None:
    if not clocks:
        return
    await conn.execute(_numbered(_CLOCKS_UPSERT, 1, 2), list(clocks), list(clocks.values()))


async def save_progress(conn: asyncpg.Connection, topic: str, progress: dict[int, int]) -> None:
    if not progress:
        return
    await conn.execute(
        _numbered(_PROGRESS_UPSERT, 1, 3), topic, list(progress), list(progress.values())
    )


_INGEST_STATE = f"""
    WITH written_bars AS ({_numbered(_BARS_UPSERT, 1, 11)} RETURNING 1),
         written_clocks AS ({_numbered(_CLOCKS_UPSERT, 12, 2)} RETURNING 1),
         written_progress AS ({_numbered(_PROGRESS_UPSERT, 14, 3)} RETURNING 1)
    SELECT (SELECT count(*) FROM written_bars), (SELECT count(*) FROM written_clocks),
           (SELECT count(*) FROM written_progress)"""


async def save_ingest_state(
    conn: asyncpg.Connection,
    bars: Sequence[Bar],
    closed: Sequence[bool],
    clocks: dict[str, int],
    topic: str,
    progress: dict[int, int],
) -> None:
    """`upsert_bars`, `save_clocks` and `save_progress` in one statement: one round trip
    per ingest transaction instead of three (empty arrays write nothing)."""
    await conn.execute(
        _INGEST_STATE,
        *_bar_arrays(bars, closed),
        list(clocks),
        list(clocks.values()),
        topic,
        list(progress),
        list(progress.values()),
    )


async def lock_progress(
    conn: asyncpg.Connection, topic: str, partitions: list[int]
) -> dict[int, int]:
    """The saved progress of `partitions`, locked until the transaction ends."""
    rows = await conn.fetch(
        "SELECT partition, sequence FROM ingest_progress WHERE topic = $1 AND partition = ANY($2::int[]) "
        "FOR UPDATE",
        topic,
        partitions,
    )
    return {row["partition"]: row["sequence"] for row in rows}


async def load_progress(conn: asyncpg.Connection, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, sequence FROM ingest_progress WHERE topic = $1", topic
    )
    return {row["partition"]: row["sequence"] for row in rows}


def _bar(row: asyncpg.Record) -> Bar:
    return Bar(
        row["symbol"],
        row["timeframe"],
        row["start_ns"],
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
        row["notional"],
        row["trade_count"],
    )


BAR_SELECT = "SELECT symbol, timeframe, start_ns, open, high, low, close, volume, notional, trade_count FROM bars"


async def last_prices(conn: asyncpg.Connection, symbols: Sequence[str]) -> dict[str, float]:
    """Each symbol's last stored trade price (its latest finest bar's close); {} on an empty store.

    One primary-key lookup per symbol, read backwards: no scan of the bars.
    """
    rows = await conn.fetch(
        """SELECT s.symbol, b.close FROM unnest($1::text[]) AS s(symbol)
        CROSS JOIN LATERAL (
            SELECT close FROM bars WHERE bars.symbol = s.symbol AND timeframe = $2
            ORDER BY start_ns DESC LIMIT 1
        ) AS b""",
        list(symbols),
        TIMEFRAMES[0].name,  # the finest: every trade is in one of its bars
    )
    return {row["symbol"]: row["close"] for row in rows}


async def load_open_state(conn: asyncpg.Connection) -> tuple[list[Bar], dict[str, int]]:
    """Open bars and symbol clocks: what the bar builder resumes from."""
    bars = [_bar(r) for r in await conn.fetch(f"{BAR_SELECT} WHERE NOT closed")]
    clocks = {
        r["symbol"]: r["clock_ns"]
        for r in await conn.fetch("SELECT symbol, clock_ns FROM bar_clocks")
    }
    return bars, clocks


async def bars_page(
    conn: asyncpg.Connection,
    symbol: str,
    timeframe: str,
    start_ns: int,
    end_ns: int,
    after_ns: int | None,
    limit: int,
) -> list[Bar]:
    """Bars with start in [start_ns, end_ns) and after `after_ns`, oldest first."""
    rows = await conn.fetch(
        f"""{BAR_SELECT}
        WHERE symbol = $1 AND timeframe = $2 AND start_ns >= $3 AND start_ns < $4 AND start_ns > $5
        ORDER BY start_ns LIMIT $6""",
        symbol,
        timeframe,
        start_ns,
        end_ns,
        after_ns if after_ns is not None else start_ns - 1,
        limit,
    )
    return [_bar(r) for r in rows]


async def latest_bars(
    conn: asyncpg.Connection, symbol: str, timeframe: str, end_ns: int, limit: int
) -> list[Bar]:
    """The `limit` most recent bars starting before `end_ns`, oldest first."""
    rows = await conn.fetch(
        f"""{BAR_SELECT} WHERE symbol = $1 AND timeframe = $2 AND start_ns < $3
        ORDER BY start_ns DESC LIMIT $4""",
        symbol,
        timeframe,
        end_ns,
        limit,
    )
    return [_bar(r) for r in reversed(rows)]


async def closed_bars_after(
    conn: asyncpg.Connection,
    symbols: Sequence[str] | None,
    timeframe: str,
    after_ns: int,
    limit: int,
) -> list[Bar]:
    """Closed bars starting after `after_ns`, by start then symbol (a stream's catch-up)."""
    rows = await conn.fetch(
        f"""{BAR_SELECT} WHERE timeframe = $1 AND start_ns > $2 AND closed
        AND ($3::text[] IS NULL OR symbol = ANY($3::text[]))
        ORDER BY start_ns, symbol LIMIT $4""",
        timeframe,
        after_ns,
        list(symbols) if symbols else None,
        limit,
    )
    return [_bar(r) for r in rows]


async def export_bars(
    conn: asyncpg.Connection,
    symbols: Sequence[str],
    timeframe: str,
    start_ns: int,
    end_ns: int,
    limit: int,
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT symbol, start_ns, open, high, low, close, volume, notional, trade_count FROM bars
            WHERE symbol = ANY($1::text[]) AND timeframe = $2 AND start_ns >= $3 AND start_ns < $4
            ORDER BY symbol, start_ns LIMIT $5""",
            list(symbols),
            timeframe,
            start_ns,
            end_ns,
            limit,
        )
    )


# The two readers of ticks, each served by its own index (migration 003): trades by the
# btree on (symbol, ts_ns, sequence) WHERE kind = 2, read in order and stopped at the
# page; quotes by the BRIN over (symbol, ts_ns). Named so a test can EXPLAIN them.
TRADES_PAGE_SQL = """SELECT sequence, ts_ns, price, size FROM ticks
    WHERE symbol = $1 AND kind = 2 AND ts_ns >= $2 AND ts_ns < $3
      AND (ts_ns, sequence) > ($4, $5)
    ORDER BY ts_ns, sequence LIMIT $6"""
QUOTES_BETWEEN_SQL = """SELECT ts_ns, bid, bid_size, ask, ask_size FROM ticks
    WHERE symbol = $1 AND kind = 1 AND ts_ns >= $2 AND ts_ns < $3
    ORDER BY ts_ns, sequence LIMIT $4"""


async def trades_page(
    conn: asyncpg.Connection,
    symbol: str,
    start_ns: int,
    end_ns: int,
    after: tuple[int, int] | None,
    limit: int,
) -> list[tuple[int, Trade]]:
    """(sequence, trade) with time in [start_ns, end_ns) after the (ts, sequence) cursor."""
    after_ts, after_seq = after if after is not None else (start_ns - 1, 0)
    rows = await conn.fetch(
        TRADES_PAGE_SQL,
        symbol,
        start_ns,
        end_ns,
        after_ts,
        after_seq,
        limit,
    )
    return [(r["sequence"], Trade(symbol, r["ts_ns"], r["price"], r["size"])) for r in rows]


async def quotes_between(
    conn: asyncpg.Connection, symbol: str, start_ns: int, end_ns: int, limit: int
) -> list[asyncpg.Record]:
    """Quotes of one symbol in [start_ns, end_ns), oldest first (for order-flow indicators)."""
    return list(
        await conn.fetch(
            QUOTES_BETWEEN_SQL,
            symbol,
            start_ns,
            end_ns,
            limit,
        )
    )


def trade_rows(trades: Sequence[Trade], first_sequence: int) -> list[tuple[Any, ...]]:
    """Tick rows (TICK_COLUMNS) of trades, numbered from `first_sequence`."""
    return [
        (first_sequence + n, t.ts_ns, t.symbol, KIND_TRADE, None, None, None, None, t.price, t.size)
        for n, t in enumerate(trades)
    ]


async def load_backfill_job(conn: asyncpg.Connection, key: Sequence[Any]) -> asyncpg.Record | None:
    """A backfill job's saved state (key: provider, kind, symbol, timeframe, start_ns, end_ns)."""
    return await conn.fetchrow(
        "SELECT next_request, done, pages, rows_written, covered_ns FROM backfill_jobs "
        "WHERE provider = $1 AND kind = $2 AND symbol = $3 AND timeframe = $4 "
        "AND start_ns = $5 AND end_ns = $6",
        *key,
    )


async def save_backfill_page(
    conn: asyncpg.Connection,
    key: Sequence[Any],
    next_request: str | None,
    rows: int,
    covered_ns: int,
) -> None:
    """Record one more page written (call in the page's transaction)."""
    await conn.execute(
        """
        INSERT INTO backfill_jobs (provider, kind, symbol, timeframe, start_ns, end_ns,
                                   next_request, done, pages, rows_written, covered_ns)
        VALUES ($1, $2, $3, $4, $5, $6, $7::text, $7::text IS NULL, 1, $8, $9)
        ON CONFLICT (provider, kind, symbol, timeframe, start_ns, end_ns) DO UPDATE SET
            next_request = EXCLUDED.next_request, done = EXCLUDED.done,
            pages = backfill_jobs.pages + 1,
            rows_written = backfill_jobs.rows_written + EXCLUDED.rows_written,
            covered_ns = GREATEST(backfill_jobs.covered_ns, EXCLUDED.covered_ns)
        """,
        *key,
        next_request,
        rows,
        covered_ns,
    )
