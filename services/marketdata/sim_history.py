"""A new simulator stack's past: generated at once and written to the store, never published.

`CIFT_MARKETDATA_SIMULATOR_HISTORY_S` gives an empty store that many seconds of
simulated ticks and bars before the live feed starts, so charts, indicators and
backtests have something to work on from the first minute. The past goes straight
into the store, as a provider backfill does, and not through the ticks topic:
everything that reads the topic takes a tick on it for the market now (execution
fills orders at it, risk prices orders with it, the stream RPCs send it live), and
the ingest's bar builder drops trades older than its clock.

The bars are the ingest's own: every timeframe's bars of the past's trades, each
closed once its symbol's last event reached its end, the rest open, with each
symbol's clock. Written before the ingest loads its state, they are where its bar
builder resumes (`BarBuilder.restore`), so the live trades go on filling the
current minute, hour and day without a seam. The simulator is left at the end of
the past, and the events it made past that end are the live feed's first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import polars as pl

from services.marketdata import store
from services.marketdata.bars import TIMEFRAMES, Bar, aggregate_trades
from services.marketdata.simulator import KIND_TRADE, PRICE_UNITS_PER_DOLLAR, Simulator, TickBatch
from services.marketdata.ticks import Tick

# Events generated per call while simulating the past (columns, not objects).
BATCH = 65_536
# Tick rows built and copied at a time, so the rows of an hour (375k tuples, about
# 100 MB of objects) never exist at once.
ROWS_PER_COPY = 32_768

Columns = dict[str, np.ndarray[Any, Any]]


@dataclass(frozen=True, slots=True)
class SimulatedPast:
    """The simulator's events before `end_ns`, as the store keeps them."""

    columns: Columns  # the events, as the simulator's TickBatch columns, in event order
    symbols: np.ndarray[Any, Any]  # each event's symbol
    bars: list[Bar]  # every timeframe's bars of the past's trades
    closed: list[bool]  # per bar: its symbol's clock reached its end
    clocks: dict[str, int]  # each symbol's last event time: where the bar builder resumes
    after: list[Tick]  # events made at or past `end_ns`: the live feed's first

    @property
    def ticks(self) -> int:
        return len(self.symbols)

    def row_chunks(self, size: int = ROWS_PER_COPY) -> Iterator[list[tuple[Any, ...]]]:
        """The tick rows (store.TICK_COLUMNS), `size` at a time.

        Sequences are numbered from the past's first timestamp: below the live feed's
        (which start at the wall clock when it starts), and unique, as the store needs.
        """
        if not self.ticks:
            return
        first_sequence = int(self.columns["ts_ns"][0])
        for start in range(0, self.ticks, size):
            part = slice(start, start + size)
            chunk = {name: values[part] for name, values in self.columns.items()}
            yield _tick_rows(chunk, self.symbols[part], first_sequence + start)


def simulate_past(simulator: Simulator, end_ns: int) -> SimulatedPast:
    """Run `simulator` from its start up to `end_ns` and shape what it made for the store."""
    batches: list[TickBatch] = []
    rate = simulator.rate_per_symbol * len(simulator.symbols)
    while simulator.now_ns < end_ns:
        # Near the end, about what is left: the events past it wait in memory for the feed.
        left = int(rate * (end_ns - simulator.now_ns) / 1e9)
        batches.append(simulator.next_batch(min(BATCH, left + 64)))
    if not batches:
        return SimulatedPast({}, np.array([], dtype=object), [], [], {}, [])
    columns = {
        name: np.concatenate([getattr(b, name) for b in batches])
        for name in ("kind", "symbol_index", "ts_ns", "bid_units", "ask_units", "bid_size",
                     "ask_size", "price_units", "size")
    }  # fmt: skip
    past = int(np.searchsorted(columns["ts_ns"], end_ns, side="left"))
    after = _events_from(batches, past)
    for name, values in columns.items():
        columns[name] = values[:past]
    symbols = np.array(simulator.symbols, dtype=object)[columns["symbol_index"]]
    clocks = _clocks(symbols, columns["ts_ns"])
    bars, closed = _bars(columns, symbols, clocks)
    return SimulatedPast(columns, symbols, bars, closed, clocks, after)


async def store_past(conn: asyncpg.Connection, past: SimulatedPast, partition_days: int) -> None:
    """Write the past in one transaction: its ticks, its bars and the symbols' clocks."""
    if not past.ticks:
        return
    times = past.columns["ts_ns"]
    first = store.partition_bounds(int(times[0]), partition_days)[0]
    starts = range(first, int(times[-1]) + 1, store.NS_PER_DAY * partition_days)
    async with conn.transaction():
        await store.ensure_partitions(conn, starts, partition_days)
        for rows in past.row_chunks():
            await store.copy_ticks(conn, rows)
        await store.upsert_bars(conn, past.bars, past.closed)
        await store.save_clocks(conn, past.clocks)


def _events_from(batches: list[TickBatch], index: int) -> list[Tick]:
    """The events of `batches`, taken as one sequence, from `index` on."""
    out: list[Tick] = []
    for batch in batches:
        if index < len(batch):
            out.extend(batch.events()[max(index, 0) :])
        index -= len(batch)
    return out


def _tick_rows(
    columns: Columns, symbols: np.ndarray[Any, Any], first_sequence: int
) -> list[tuple[Any, ...]]:
    scale = float(PRICE_UNITS_PER_DOLLAR)
    trade = columns["kind"] == KIND_TRADE
    bid, ask = columns["bid_units"] / scale, columns["ask_units"] / scale
    price = columns["price_units"] / scale
    # A quote's trade columns and a trade's quote columns are NULL, as the ingest writes them.
    return [
        (first_sequence + n, ts, symbol, store.KIND_TRADE if is_trade else store.KIND_QUOTE,
         None if is_trade else b, None if is_trade else a,
         None if is_trade else float(bs), None if is_trade else float(az),
         p if is_trade else None, float(sz) if is_trade else None)
        for n, (ts, symbol, is_trade, b, a, bs, az, p, sz) in enumerate(
            zip(columns["ts_ns"].tolist(), symbols.tolist(), trade.tolist(), bid.tolist(),
                ask.tolist(), columns["bid_size"].tolist(), columns["ask_size"].tolist(),
                price.tolist(), columns["size"].tolist(), strict=True)
        )
    ]  # fmt: skip


def _clocks(symbols: np.ndarray[Any, Any], ts_ns: np.ndarray[Any, Any]) -> dict[str, int]:
    """Each symbol's last event time (events are in time order, so the last one wins)."""
    return dict(zip(symbols.tolist(), ts_ns.tolist(), strict=True))


def _bars(
    columns: Columns,
    symbols: np.ndarray[Any, Any],
    clocks: dict[str, int],
) -> tuple[list[Bar], list[bool]]:
    trade = columns["kind"] == KIND_TRADE
    trades = pl.DataFrame(
        {
            "symbol": pl.Series(symbols[trade].tolist(), dtype=pl.String),
            "ts_ns": columns["ts_ns"][trade],
            "price": columns["price_units"][trade] / float(PRICE_UNITS_PER_DOLLAR),
            "size": columns["size"][trade].astype(np.float64),
        }
    )
    bars: list[Bar] = []
    closed: list[bool] = []
    figures = ("open", "high", "low", "close", "volume", "notional", "trade_count")
    for timeframe in TIMEFRAMES:
        frame = aggregate_trades(trades, timeframe).select("symbol", "start_ns", *figures)
        for symbol, start_ns, *values in frame.iter_rows():
            bars.append(Bar(symbol, timeframe.name, start_ns, *values))
            closed.append(start_ns + timeframe.ns <= clocks[symbol])
    return bars, closed
