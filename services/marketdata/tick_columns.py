"""Serialized `TickEvent`s to column arrays in one compiled pass: the ingest's decoder.

The ingest writes a handful of numbers per tick. Going through protobuf objects costs
a Python object per message and per sub-message plus an attribute read per field
(~2 µs a tick, a fifth of one process's whole ingest budget); reading the wire format
straight into arrays costs a few tens of nanoseconds. Only what the ingest stores is
read (symbol, prices, sizes, time, sequence); every other field, including ones added
later, is skipped by its wire type, as protobuf itself would. A record that is not a
well-formed `TickEvent` holding a quote or a trade, with a time that fits the ticks
table's 64-bit nanoseconds, is marked MALFORMED, never guessed.

Wire format (protobuf encoding): each field is a varint key (number << 3 | wire type)
then a varint (type 0), 8 little-endian bytes (type 1), a varint length and that many
bytes (type 2), or 4 bytes (type 5). `TickEvent` holds `quote` (1) or `trade` (2);
`Quote` symbol 1, bid 2, ask 3, bid_size 4, ask_size 5, timestamp 7, sequence 8;
`Trade` symbol 1, price 2, size 3, timestamp 4, sequence 5; `Timestamp` seconds 1,
nanos 2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from cift.runtime.timestamps import NS_PER_S

MALFORMED = 0
QUOTE = 1
TRADE = 2
# Whole seconds whose nanoseconds (plus any fraction) still fit in a signed 64-bit integer.
MIN_SECONDS = -(2**63) // NS_PER_S + 1
MAX_SECONDS = (2**63 - 1) // NS_PER_S - 1


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _varint(buf: npt.NDArray[np.uint8], i: int, end: int) -> tuple[int, int]:
    """(value, next index); next index -1 when the varint runs past `end` or is too long."""
    value = 0
    shift = 0
    while i < end and shift < 70:
        b = buf[i]
        i += 1
        value |= int(b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
    return 0, -1


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _skip(buf: npt.NDArray[np.uint8], wire: int, i: int, end: int) -> int:
    """Index after a field's value of wire type `wire`; -1 if it does not fit."""
    if wire == 0:
        _, i = _varint(buf, i, end)
        return i
    if wire == 1:
        return i + 8 if i + 8 <= end else -1
    if wire == 5:
        return i + 4 if i + 4 <= end else -1
    if wire == 2:
        length, i = _varint(buf, i, end)
        if i < 0 or length < 0 or i + length > end:
            return -1
        return i + length
    return -1


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _double(buf: npt.NDArray[np.uint8], i: int) -> float:
    return buf[i : i + 8].copy().view(np.float64)[0]  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _timestamp(buf: npt.NDArray[np.uint8], i: int, end: int) -> tuple[int, bool]:
    seconds = 0
    nanos = 0
    while i < end:
        key, i = _varint(buf, i, end)
        if i < 0:
            return 0, False
        field = key >> 3
        wire = key & 7
        if wire == 0 and (field == 1 or field == 2):
            value, i = _varint(buf, i, end)
            if i < 0:
                return 0, False
            if field == 1:
                seconds = value
            else:
                nanos = value
        else:
            i = _skip(buf, wire, i, end)
            if i < 0:
                return 0, False
    if not MIN_SECONDS <= seconds <= MAX_SECONDS or not 0 <= nanos < NS_PER_S:
        # Not a time the ticks table's bigint nanoseconds can hold (nor a valid Timestamp).
        return 0, False
    return seconds * NS_PER_S + nanos, True


@njit(cache=True, nogil=True)  # type: ignore[misc]
def decode_columns(
    buf: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    sequence: npt.NDArray[np.int64],
    ts_ns: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    symbol: npt.NDArray[np.int64],
) -> None:
    """Fill the columns of record r, which spans buf[offsets[r]:offsets[r + 1]].

    values[r] holds bid, ask, bid_size, ask_size for a quote and price, size, 0, 0
    for a trade; symbol[r] the symbol's start and end in `buf`.
    """
    for r in range(offsets.shape[0] - 1):
        kind[r] = MALFORMED
        # The TickEvent's own fields: exactly one quote or trade, other fields skipped.
        # (Protobuf would merge a repeated one; no producer writes that, so it is
        # refused rather than merged here.)
        i = offsets[r]
        record_end = offsets[r + 1]
        tick_key = 0
        tick_start = tick_end = 0
        while i < record_end:
            key, i = _varint(buf, i, record_end)
            if i < 0:
                break
            if key == 10 or key == 18:
                length, i = _varint(buf, i, record_end)
                if tick_key or i < 0 or length < 0 or i + length > record_end:
                    i = -1
                    break
                tick_key = key
                tick_start = i
                tick_end = i = i + length
            else:
                i = _skip(buf, key & 7, i, record_end)
                if i < 0:
                    break
        if i < 0 or tick_key == 0:
            continue
        i = tick_start
        end = tick_end
        is_quote = tick_key == 10
        # The field numbers of timestamp and sequence differ between Quote and Trade.
        ts_field = 7 if is_quote else 4
        seq_field = 8 if is_quote else 5
        last_double = 5 if is_quote else 3
        ok = True
        seq = 0
        ts = 0
        sym_start = i
        sym_end = i
        values[r, 0] = 0.0
        values[r, 1] = 0.0
        values[r, 2] = 0.0
        values[r, 3] = 0.0
        while i < end:
            key, i = _varint(buf, i, end)
            if i < 0:
                ok = False
                break
            field = key >> 3
            wire = key & 7
            if field == 1 and wire == 2:
                length, i = _varint(buf, i, end)
                if i < 0 or i + length > end:
                    ok = False
                    break
                sym_start = i
                sym_end = i + length
                i += length
            elif 2 <= field <= last_double and wire == 1:
                if i + 8 > end:
                    ok = False
                    break
                values[r, field - 2] = _double(buf, i)
                i += 8
            elif field == ts_field and wire == 2:
                length, i = _varint(buf, i, end)
                if i < 0 or i + length > end:
                    ok = False
                    break
                ts, ok = _timestamp(buf, i, i + length)
                if not ok:
                    break
                i += length
            elif field == seq_field and wire == 0:
                seq, i = _varint(buf, i, end)
                if i < 0:
                    ok = False
                    break
            else:
                i = _skip(buf, wire, i, end)
                if i < 0:
                    ok = False
                    break
        if not ok:
            continue
        kind[r] = QUOTE if is_quote else TRADE
        sequence[r] = seq
        ts_ns[r] = ts
        symbol[r, 0] = sym_start
        symbol[r, 1] = sym_end


@njit(cache=True, nogil=True)  # type: ignore[misc]
def keep_new(
    partition: npt.NDArray[np.int64],
    sequence: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    progress: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
) -> None:
    """Mark ticks above their partition's running high-water mark, advancing it.

    `partition` holds each record's index into `progress`; a replayed tick (at or
    below the mark, including one repeated later in the same batch) is not kept.
    """
    for r in range(sequence.shape[0]):
        if kind[r] == MALFORMED or sequence[r] <= progress[partition[r]]:
            keep[r] = False
        else:
            keep[r] = True
            progress[partition[r]] = sequence[r]


class TickColumns(NamedTuple):
    """A batch of serialized ticks as columns (row r is the batch's record r)."""

    buffer: bytes
    kind: npt.NDArray[np.int8]
    sequence: npt.NDArray[np.int64]
    ts_ns: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    symbol: npt.NDArray[np.int64]


def byte_array(buffer: bytes) -> npt.NDArray[np.uint8]:
    """`buffer` as the uint8 array the kernels read (its bytes, not a copy)."""
    return np.frombuffer(buffer, dtype=np.uint8) if buffer else np.zeros(0, np.uint8)


def tick_columns(records: list[bytes]) -> TickColumns:
    """Decode serialized `TickEvent`s (the tick topic's record values) into columns."""
    count = len(records)
    buffer = b"".join(records)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, records), dtype=np.int64, count=count), out=offsets[1:])
    kind = np.empty(count, dtype=np.int8)
    sequence = np.zeros(count, dtype=np.int64)
    ts_ns = np.zeros(count, dtype=np.int64)
    values = np.zeros((count, 4), dtype=np.float64)
    symbol = np.zeros((count, 2), dtype=np.int64)
    decode_columns(byte_array(buffer), offsets, kind, sequence, ts_ns, values, symbol)
    return TickColumns(buffer, kind, sequence, ts_ns, values, symbol)


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _same_bytes(buf: npt.NDArray[np.uint8], a: int, b: int, length: int) -> bool:
    k = 0
    while k < length and buf[a + k] == buf[b + k]:
        k += 1
    return k == length


@njit(cache=True, nogil=True)  # type: ignore[misc]
def number_symbols(
    buf: npt.NDArray[np.uint8],
    symbol: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    codes: npt.NDArray[np.int64],
    first: npt.NDArray[np.int64],
) -> int:
    """Number the batch's distinct symbols in the order they first occur; returns how many.

    codes[r] is record r's symbol number (-1 for a MALFORMED record), first[c] the
    record where symbol c first occurs. One probe of an open-addressing table keyed
    by the symbol's bytes per record (FNV-1a), instead of slicing a bytes object and
    looking it up in a dict: the caller decodes each distinct symbol once.
    """
    n = kind.shape[0]
    slots = 16
    while slots < 2 * n:
        slots *= 2
    mask = slots - 1
    table = np.full(slots, -1, np.int64)
    distinct = 0
    for r in range(n):
        if kind[r] == MALFORMED:
            codes[r] = -1
            continue
        start = symbol[r, 0]
        length = symbol[r, 1] - start
        h = _FNV_OFFSET
        for k in range(length):
            h = (h ^ np.uint64(buf[start + k])) * _FNV_PRIME
        slot = np.int64(h & np.uint64(mask))
        while True:
            code = table[slot]
            if code < 0:
                table[slot] = distinct
                first[distinct] = r
                codes[r] = distinct
                distinct += 1
                break
            other = first[code]
            if symbol[other, 1] - symbol[other, 0] == length and _same_bytes(
                buf, symbol[other, 0], start, length
            ):
                codes[r] = code
                break
            slot = (slot + 1) & mask
    return distinct


def symbol_codes(columns: TickColumns) -> tuple[npt.NDArray[np.int64], list[bytes]]:
    """(each record's symbol number, -1 where MALFORMED; each number's symbol bytes)."""
    count = len(columns.kind)
    codes = np.empty(count, dtype=np.int64)
    first = np.empty(count, dtype=np.int64)
    buffer = columns.buffer
    distinct = number_symbols(byte_array(buffer), columns.symbol, columns.kind, codes, first)
    spans = columns.symbol[first[:distinct]].tolist()
    return codes, [buffer[start:end] for start, end in spans]
