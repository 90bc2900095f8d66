"""Tick columns to PostgreSQL's binary COPY format in one compiled pass: the ingest's writer.

Going through Python rows costs a tuple, a str and a float or None object per
column of every tick, then asyncpg's encoding of each (about 2 µs a tick, as much
as the rest of the ingest's own work); writing the COPY stream straight from the
decoded columns and the records' own symbol bytes costs a few tens of nanoseconds.

Binary COPY (PostgreSQL's documented format): the signature `PGCOPY\\n\\377\\r\\n\\0`, a
32-bit flags word and a 32-bit header-extension length (both 0); per row a 16-bit
field count, then per field a 32-bit byte length (-1 for NULL) and the value in
network byte order (bigint 8 bytes, smallint 2, double precision 8 as IEEE 754, text
its UTF-8 bytes); a 16-bit -1 ends the stream. Columns are `store.TICK_COLUMNS`:
quotes fill bid..ask_size and leave price and size NULL, trades the other way round.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from services.marketdata.tick_columns import TRADE, TickColumns, byte_array

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
FIELDS = 10
# Per row: field count, sequence and ts_ns, the symbol's length (its bytes vary), kind;
# then a quote's four doubles and two NULLs, or a trade's four NULLs and two doubles.
ROW_BYTES = 2 + 2 * (4 + 8) + 4 + (4 + 2)
QUOTE_BYTES = 4 * (4 + 8) + 2 * 4
TRADE_BYTES = 4 * 4 + 2 * (4 + 8)
KIND_QUOTE = 1
KIND_TRADE = 2


@njit(cache=True, nogil=True, inline="always")  # type: ignore[misc]
def _int(out: npt.NDArray[np.uint8], at: int, value: int, size: int) -> int:
    """Write `value` as a big-endian two's-complement integer of `size` bytes."""
    for k in range(size):
        out[at + k] = (value >> (8 * (size - 1 - k))) & 0xFF
    return at + size


@njit(cache=True, nogil=True)  # type: ignore[misc]
def write_rows(
    buf: npt.NDArray[np.uint8],
    rows: npt.NDArray[np.int64],
    symbol: npt.NDArray[np.int64],
    sequence: npt.NDArray[np.int64],
    ts_ns: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    value_bits: npt.NDArray[np.int64],
    out: npt.NDArray[np.uint8],
    at: int,
) -> int:
    """Write the COPY rows of records `rows` into `out` from `at`; returns the end.

    `value_bits` holds each record's four values as the bits of their doubles.
    """
    for r in rows:
        at = _int(out, at, FIELDS, 2)
        at = _int(out, at, 8, 4)
        at = _int(out, at, sequence[r], 8)
        at = _int(out, at, 8, 4)
        at = _int(out, at, ts_ns[r], 8)
        start = symbol[r, 0]
        length = symbol[r, 1] - start
        at = _int(out, at, length, 4)
        for k in range(length):
            out[at + k] = buf[start + k]
        at += length
        trade = kind[r] == TRADE
        at = _int(out, at, 2, 4)
        at = _int(out, at, KIND_TRADE if trade else KIND_QUOTE, 2)
        if trade:
            for _ in range(4):
                at = _int(out, at, -1, 4)
            for k in range(2):
                at = _int(out, at, 8, 4)
                at = _int(out, at, value_bits[r, k], 8)
        else:
            for k in range(4):
                at = _int(out, at, 8, 4)
                at = _int(out, at, value_bits[r, k], 8)
            for _ in range(2):
                at = _int(out, at, -1, 4)
    return at


def copy_payload(columns: TickColumns, rows: npt.NDArray[np.int64]) -> bytes:
    """The binary COPY stream of the records `rows` of `columns` (quotes and trades).

    Their symbols must be valid UTF-8 without NUL (the ingest refuses other records).
    """
    spans = columns.symbol[rows]
    trades = int(np.count_nonzero(columns.kind[rows] == TRADE))
    size = (
        len(SIGNATURE)
        + len(rows) * ROW_BYTES
        + (len(rows) - trades) * QUOTE_BYTES
        + trades * TRADE_BYTES
        + int((spans[:, 1] - spans[:, 0]).sum())
    )
    out = np.empty(size + len(TRAILER), dtype=np.uint8)
    out[: len(SIGNATURE)] = np.frombuffer(SIGNATURE, dtype=np.uint8)
    end = write_rows(
        byte_array(columns.buffer),
        rows,
        columns.symbol,
        columns.sequence,
        columns.ts_ns,
        columns.kind,
        columns.values.view(np.int64),
        out,
        len(SIGNATURE),
    )
    assert end == size
    out[end:] = np.frombuffer(TRAILER, dtype=np.uint8)
    return out.tobytes()
