"""Time conversions between nanoseconds, database datetimes and protobuf Timestamps.

Every service moves times between these three shapes; each used to write its own
helpers, some through floats (`ns / 1e9`), which lose nanoseconds past 2^53 and can
round a microsecond the wrong way. These use integer arithmetic only, so a time
read back from the database equals, to the microsecond, the one written.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

NS_PER_S = 1_000_000_000
NS_PER_US = 1_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ns() -> int:
    """Wall-clock nanoseconds since the epoch."""
    return time.time_ns()


def to_datetime(ns: int) -> datetime:
    """A UTC datetime (microsecond precision, truncated toward the past) of `ns`."""
    return _EPOCH + timedelta(microseconds=ns // NS_PER_US)


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact to its microseconds)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def timestamp(ns: int) -> Timestamp:
    """A protobuf Timestamp of `ns`."""
    # One constructor call: market data builds one per bar it serves, and setting the
    # fields of an empty Timestamp afterwards crosses into upb once more per field.
    seconds, nanos = divmod(ns, NS_PER_S)
    return Timestamp(seconds=seconds, nanos=nanos)


def timestamp_of(moment: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp of an aware datetime; None stays None (an unset field)."""
    return None if moment is None else timestamp(to_ns(moment))


def timestamp_of_ns(ns: int | None) -> Timestamp | None:
    """A protobuf Timestamp of `ns`; None stays None, so a time not known (a clock's next
    open, an order's expiry) is left unset in a message's constructor, not sent as the epoch."""
    return None if ns is None else timestamp(ns)
