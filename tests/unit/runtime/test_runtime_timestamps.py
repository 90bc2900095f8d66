"""Time conversions are exact: integer arithmetic, no float rounding."""

from __future__ import annotations

from datetime import UTC, datetime

from cift.runtime.timestamps import timestamp, timestamp_of, to_datetime, to_ns


def test_a_datetime_round_trips_to_the_microsecond() -> None:
    moment = datetime(2026, 12, 5, 23, 59, 59, 999_999, tzinfo=UTC)
    assert to_datetime(to_ns(moment)) == moment


def test_nanoseconds_below_a_microsecond_are_truncated_not_rounded() -> None:
    ns = 1_764_979_199_999_999_999  # float arithmetic would round this up to the next second
    assert to_datetime(ns) == datetime(2025, 12, 5, 23, 59, 59, 999_999, tzinfo=UTC)
    assert to_ns(to_datetime(ns)) == ns - 999


def test_times_before_the_epoch() -> None:
    moment = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    assert to_ns(moment) == -500_000_000
    assert to_datetime(-500_000_000) == moment


def test_protobuf_timestamps_carry_every_nanosecond() -> None:
    assert timestamp(1_500_000_001).ToNanoseconds() == 1_500_000_001
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    stamp = timestamp_of(moment)
    assert stamp is not None and stamp.ToNanoseconds() == to_ns(moment)
    assert timestamp_of(None) is None
