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


@dataclass(frozen=True, slots=True)
class SimulatedPast:
    """The simulator's events before `end_ns`, as the store keeps them."""

    rows: list[tuple[Any, ...]]  # tick rows (store.TICK_COLUMNS), in event order
    bars: list[Bar]  # every timeframe's bars of the past's trades
    closed: list[bool]  # per bar: its symbol's clock reached its end
    clocks: dict[str, int]  # each symbol's last event time: where the bar builder resumes
    after: list[Tick]  # events made at or past `end_ns`: the live feed's first


def simulate_past(simulator: Simulator, end_ns: int) -> SimulatedPast:
    """Run `simulator` from its start up to `end_ns` and shape what it made for the store.

    Sequences are numbered from the past's first timestamp: below the live feed's
    (which start at the wall clock when it starts), and unique, as the store needs.
    """
    batches: list[TickBatch] = []
    rate = simulator.rate_per_symbol * len(simulator.symbols)
    while simulator.now_ns < end_ns:
        # Near the end, about what is left: the events past it wait in memory for the feed.
        left = int(rate * (end_ns - simulator.now_ns) / 1e9)
        batches.append(simulator.next_batch(min(BATCH, left + 64)))
    if not batches:
        return SimulatedPast([], [], [], {}, [])
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
    rows = _tick_rows(columns, symbols, first_sequence=int(columns["ts_ns"][0]) if past else 0)
    clocks = _clocks(symbols, columns["ts_ns"])
    bars, closed = _bars(columns, symbols, clocks)
    return SimulatedPast(rows, bars, closed, clocks, after)


async def store_past(conn: asyncpg.Connection, past: SimulatedPast, partition_days: int) -> None:
    """Write the past in one transaction: its ticks, its bars and the symbols' clocks."""
    starts = {store.partition_bounds(row[1], partition_days)[0] for row in past.rows}
    async with conn.transaction():
        await store.ensure_partitions(conn, starts, partition_days)
        await store.copy_ticks(conn, past.rows)
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
    columns: dict[str, np.ndarray[Any, Any]], symbols: np.ndarray[Any, Any], first_sequence: int
) -> list[tuple[Any, ...]]:
    scale = float(PRICE_UNITS_PER_DOLLAR)
    trade = columns["kind"] == KIND_TRADE
    quote = ~trade
    # A quote's trade columns and a trade's quote columns are NULL, as the ingest writes them.
    bid = np.where(quote, columns["bid_units"] / scale, np.nan)
    ask = np.where(quote, columns["ask_units"] / scale, np.nan)
    price = np.where(trade, columns["price_units"] / scale, np.nan)
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
    columns: dict[str, np.ndarray[Any, Any]],
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
    for timeframe in TIMEFRAMES:
        frame = aggregate_trades(trades, timeframe)
        for row in frame.iter_rows(named=True):
            bars.append(
                Bar(
                    row["symbol"],
                    timeframe.name,
                    row["start_ns"],
                    row["open"],
                    row["high"],
                    row["low"],
                    row["close"],
                    row["volume"],
                    row["notional"],
                    row["trade_count"],
                )
            )
            closed.append(row["start_ns"] + timeframe.ns <= clocks[row["symbol"]])
    return bars, closed
