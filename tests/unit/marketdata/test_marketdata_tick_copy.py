"""The ingest's COPY stream holds exactly the rows the ticks table gets from protobuf's reading."""

from __future__ import annotations

import struct

import numpy as np

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from services.marketdata import store
from services.marketdata.events import tick_event_bytes
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from services.marketdata.tick_columns import tick_columns
from services.marketdata.tick_copy import SIGNATURE, copy_payload

NS = 1_000_000_000


def parse(payload: bytes) -> list[tuple[object, ...]]:
    """PostgreSQL's binary COPY read back (the ticks table's column types)."""
    assert payload.startswith(SIGNATURE)
    at = len(SIGNATURE)
    rows: list[tuple[object, ...]] = []
    while True:
        (fields,) = struct.unpack_from("!h", payload, at)
        at += 2
        if fields == -1:
            assert at == len(payload)
            return rows
        assert fields == len(store.TICK_COLUMNS)
        row: list[object] = []
        for column in store.TICK_COLUMNS:
            (length,) = struct.unpack_from("!i", payload, at)
            at += 4
            if length == -1:
                row.append(None)
                continue
            raw = payload[at : at + length]
            at += length
            if column in ("sequence", "ts_ns"):
                row.append(struct.unpack("!q", raw)[0])
            elif column == "kind":
                row.append(struct.unpack("!h", raw)[0])
            elif column == "symbol":
                row.append(raw.decode())
            else:
                row.append(struct.unpack("!d", raw)[0])
        rows.append(tuple(row))


def expected_row(value: bytes) -> tuple[object, ...]:
    event = events_pb2.TickEvent.FromString(value)
    if event.HasField("quote"):
        q = event.quote
        ts = q.timestamp.seconds * NS + q.timestamp.nanos
        return (
            q.sequence,
            ts,
            q.symbol,
            store.KIND_QUOTE,
            q.bid,
            q.ask,
            q.bid_size,
            q.ask_size,
            None,
            None,
        )
    t = event.trade
    ts = t.timestamp.seconds * NS + t.timestamp.nanos
    return (t.sequence, ts, t.symbol, store.KIND_TRADE, None, None, None, None, t.price, t.size)


def test_the_copy_stream_holds_the_chosen_records_as_protobuf_reads_them() -> None:
    ticks = Simulator(
        default_universe(), seed=3, rate_per_symbol=100.0, start_ns=-5 * NS
    ).next_events(2000)
    values = [
        tick_event_bytes(m)
        for m in FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.0).stamp(ticks)
    ]
    # Times before 1970 and a symbol of many bytes (non-ASCII) take the same path.
    values.append(
        tick_event_bytes(
            marketdata_pb2.Trade(symbol="ÆØÅ.LONGER.SYMBOL", price=-0.0, size=1e300, sequence=2**62)
        )
    )
    columns = tick_columns(values)
    chosen = np.array([r for r in range(len(values)) if r % 3 != 1], dtype=np.int64)
    assert parse(copy_payload(columns, chosen)) == [expected_row(values[r]) for r in chosen]


def test_no_rows_give_an_empty_stream() -> None:
    columns = tick_columns([tick_event_bytes(marketdata_pb2.Quote(symbol="A"))])
    assert parse(copy_payload(columns, np.zeros(0, dtype=np.int64))) == []
