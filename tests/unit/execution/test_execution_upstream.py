"""How execution reads market data's replies: the clock and instruments."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from cift.marketdata.v1 import marketdata_pb2
from services.execution.upstream import clock_from_reply


def stamp(ns: int) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(ns)
    return value


def test_a_calendar_without_a_next_close_never_closes() -> None:
    reply = marketdata_pb2.GetClockResponse(timestamp=stamp(1_000), is_open=True, calendar="24x7")
    clock = clock_from_reply(reply)
    assert clock.now_ns == 1_000 and clock.is_open
    assert clock.next_close_ns is None


def test_a_session_calendar_reports_its_next_close() -> None:
    reply = marketdata_pb2.GetClockResponse(
        timestamp=stamp(1_000), is_open=True, next_close=stamp(5_000), calendar="XNYS"
    )
    assert clock_from_reply(reply).next_close_ns == 5_000


def test_a_close_at_the_epoch_is_still_a_close() -> None:
    # HasField, not truthiness: a set timestamp of zero is a value, not absence.
    reply = marketdata_pb2.GetClockResponse(timestamp=stamp(1_000), next_close=stamp(0))
    assert clock_from_reply(reply).next_close_ns == 0
