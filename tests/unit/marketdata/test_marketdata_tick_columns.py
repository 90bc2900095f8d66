"""The ingest's compiled tick decoder reads exactly what protobuf reads, and refuses the rest."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from services.marketdata.events import TickMessage, tick_event_bytes
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator
from services.marketdata.tick_columns import (
    MALFORMED,
    MAX_SECONDS,
    MIN_SECONDS,
    QUOTE,
    TRADE,
    TickColumns,
    keep_new,
    symbol_codes,
    tick_columns,
)

NS = 1_000_000_000


def expected(value: bytes) -> tuple[int, int, int, tuple[float, ...], str]:
    """(kind, sequence, ts_ns, values, symbol) as protobuf decodes the record."""
    event = events_pb2.TickEvent.FromString(value)
    if event.HasField("quote"):
        q = event.quote
        stamp = q.timestamp
        values = (q.bid, q.ask, q.bid_size, q.ask_size)
        return QUOTE, q.sequence, stamp.seconds * NS + stamp.nanos, values, q.symbol
    t = event.trade
    stamp = t.timestamp
    return (
        TRADE,
        t.sequence,
        stamp.seconds * NS + stamp.nanos,
        (t.price, t.size, 0.0, 0.0),
        t.symbol,
    )


def row(columns: TickColumns, r: int) -> tuple[int, int, int, tuple[float, ...], str]:
    start, end = columns.symbol[r].tolist()
    return (
        int(columns.kind[r]),
        int(columns.sequence[r]),
        int(columns.ts_ns[r]),
        tuple(columns.values[r].tolist()),
        columns.buffer[start:end].decode(),
    )


def simulated(count: int) -> list[TickMessage]:
    ticks = Simulator(
        default_universe(), seed=5, rate_per_symbol=100.0, start_ns=1_704_205_800 * NS
    )
    return FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.0).stamp(
        ticks.next_events(count)
    )


def test_simulated_quotes_and_trades_decode_as_protobuf_does() -> None:
    values = [tick_event_bytes(m) for m in simulated(3000)]
    columns = tick_columns(values)
    kinds = {int(k) for k in columns.kind}
    assert kinds == {QUOTE, TRADE}
    for r, value in enumerate(values):
        assert row(columns, r) == expected(value)


def test_provider_venue_fields_and_unknown_fields_are_skipped() -> None:
    quote = marketdata_pb2.Quote(
        symbol="AAPL",
        bid=187.25,
        ask=187.26,
        bid_size=300,
        ask_size=100,
        last=187.255,
        sequence=2**62 + 5,
        bid_exchange="V",
        ask_exchange="Q",
        conditions=["R", "Z"],
        tape="C",
    )
    quote.timestamp.seconds = 1_708_617_105
    quote.timestamp.nanos = 335_689_322
    trade = marketdata_pb2.Trade(
        symbol="BRK.B",
        price=412.5,
        size=0.25,
        sequence=7,
        trade_id="52983525029461",
        conditions=["@", "I"],
        exchange="D",
        tape="A",
    )
    trade.timestamp.seconds = 1_708_617_106
    values = [tick_event_bytes(quote), tick_event_bytes(trade)]
    columns = tick_columns(values)
    assert row(columns, 0) == (
        QUOTE,
        2**62 + 5,
        1_708_617_105 * NS + 335_689_322,
        (187.25, 187.26, 300.0, 100.0),
        "AAPL",
    )
    assert row(columns, 1) == (TRADE, 7, 1_708_617_106 * NS, (412.5, 0.25, 0.0, 0.0), "BRK.B")


def beyond_int64_ns() -> bytes:
    quote = marketdata_pb2.Quote(symbol="AAPL", bid=1.0, ask=1.01, sequence=1)
    quote.timestamp.seconds = MAX_SECONDS + 1
    return tick_event_bytes(quote)


def test_malformed_records_are_marked_and_their_neighbours_kept() -> None:
    good = tick_event_bytes(simulated(1)[0])
    empty_event = events_pb2.TickEvent().SerializeToString()
    bad = [
        good[:-3],  # truncated
        b"\xff\xff\xff",  # no valid key
        empty_event,  # neither quote nor trade
        good + b"\x08",  # a trailing field without its value
        b"\x0a\x02\x0a\x7f",  # the symbol runs past the end
        b"\x0a\x03\x3f\x00\x00",  # an unknown wire type (7)
        beyond_int64_ns(),
    ]
    columns = tick_columns([good, *bad, good])
    assert columns.kind.tolist() == [QUOTE if columns.kind[0] == QUOTE else TRADE] + [
        MALFORMED
    ] * len(bad) + [columns.kind[0]]
    assert row(columns, 0) == row(columns, len(bad) + 1) == expected(good)


def test_other_tick_event_fields_are_skipped_and_a_second_tick_refused() -> None:
    first, second = (tick_event_bytes(m) for m in simulated(2))
    # An unknown varint field (15) before the tick, a length-delimited one (14) after.
    framed = b"\x78\x96\x01" + first + b"\x72\x02hi"
    columns = tick_columns([framed, first + second])
    assert row(columns, 0) == expected(framed) == expected(first)
    assert columns.kind[1] == MALFORMED


def test_an_empty_batch_has_no_rows() -> None:
    columns = tick_columns([])
    assert len(columns.kind) == 0


finite = st.floats(allow_nan=False, allow_infinity=True)


@given(
    symbol=st.text(max_size=12),
    numbers=st.lists(finite, min_size=4, max_size=4),
    sequence=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    seconds=st.integers(min_value=MIN_SECONDS, max_value=MAX_SECONDS),
    nanos=st.integers(min_value=0, max_value=999_999_999),
    is_quote=st.booleans(),
)
def test_any_tick_decodes_as_protobuf_does(
    symbol: str,
    numbers: list[float],
    sequence: int,
    seconds: int,
    nanos: int,
    is_quote: bool,
) -> None:
    message: TickMessage
    if is_quote:
        message = marketdata_pb2.Quote(
            symbol=symbol,
            bid=numbers[0],
            ask=numbers[1],
            bid_size=numbers[2],
            ask_size=numbers[3],
            sequence=sequence,
        )
    else:
        message = marketdata_pb2.Trade(
            symbol=symbol, price=numbers[0], size=numbers[1], sequence=sequence
        )
    message.timestamp.seconds = seconds
    message.timestamp.nanos = nanos
    value = tick_event_bytes(message)
    assert row(tick_columns([value]), 0) == expected(value)


def test_keep_new_skips_replays_against_the_mark_and_within_the_batch() -> None:
    partition = np.array([0, 1, 0, 0, 1, 1], dtype=np.int64)
    sequence = np.array([5, 3, 6, 6, 2, 9], dtype=np.int64)
    kind = np.array([QUOTE, TRADE, MALFORMED, QUOTE, QUOTE, TRADE], dtype=np.int8)
    marks = np.array([4, 3], dtype=np.int64)
    keep = np.empty(6, dtype=np.bool_)
    keep_new(partition, sequence, kind, marks, keep)
    # 5 > 4 kept; 3 is partition 1's mark; the malformed 6 is not counted, so the
    # next 6 is new; 2 is below the mark; 9 is new.
    assert keep.tolist() == [True, False, False, True, False, True]
    assert marks.tolist() == [6, 9]


@given(
    st.lists(
        st.one_of(st.sampled_from([b"AAPL", b"MSFT", b"A", b"AA", b""]), st.binary(max_size=20)),
        min_size=1,
        max_size=60,
    )
)
def test_symbols_are_numbered_by_their_bytes_in_order_of_first_occurrence(
    names: list[bytes],
) -> None:
    # Symbols that are not UTF-8 are numbered too: the ingest refuses them by number.
    values = [
        b"\x0a" + bytes([len(q)]) + q
        for q in (b"\x0a" + bytes([len(name)]) + name + b"\x40\x07" for name in names)
    ] + [b"\xff"]
    columns = tick_columns(values)
    codes, distinct = symbol_codes(columns)
    order = list(dict.fromkeys(names))
    assert distinct == order
    assert codes.tolist() == [order.index(name) for name in names] + [-1]
