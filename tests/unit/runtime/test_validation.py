"""Request values no service can take are refused before any handler, naming the field."""

from __future__ import annotations

import re

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cift.execution.v1 import execution_pb2
from cift.marketdata.v1 import marketdata_pb2
from cift.risk.v1 import risk_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.validation import MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS, check_request


def _stamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (execution_pb2.ListOrdersRequest(symbols=["AAPL", "\x00"]), "symbols[1]"),
        (execution_pb2.ClosePositionRequest(symbol="\x00"), "symbol"),
        (
            execution_pb2.SubmitOrderRequest(symbol="AAPL", client_order_id="a\x00b"),
            "client_order_id",
        ),
    ],
)
def test_a_nul_character_in_any_string_is_refused_naming_the_field(
    request_message: object, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=f"^{re.escape(field)} must not contain a NUL"):
        check_request(request_message)  # type: ignore[arg-type]


def test_strings_inside_nested_messages_are_checked() -> None:
    request = risk_pb2.CheckOrdersRequest(
        checks=[risk_pb2.CheckOrderRequest(symbol="AAPL"), risk_pb2.CheckOrderRequest(qty="1\x00")]
    )
    with pytest.raises(InvalidArgument, match=r"^checks\[1\]\.qty must not"):
        check_request(request)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0695-01-08T08:32:16Z", None),
        (None, "7216-06-24T03:55:19Z"),
        ("0002-06-30T22:54:56Z", None),
        ("1677-09-21T00:12:43Z", None),
        (None, "2262-04-11T23:47:17Z"),
    ],
)
def test_timestamps_outside_int64_nanoseconds_are_refused(
    start: str | None, end: str | None
) -> None:
    request = marketdata_pb2.GetTradesRequest(symbol="AAPL")
    if start is not None:
        request.start.CopyFrom(_stamp(start))
    if end is not None:
        request.end.CopyFrom(_stamp(end))
    with pytest.raises(InvalidArgument, match=rf"^{'start' if start else 'end'} must lie between"):
        check_request(request)


def _trades_between(start_ns: int, end_ns: int) -> marketdata_pb2.GetTradesRequest:
    request = marketdata_pb2.GetTradesRequest(symbol="AAPL")
    request.start.FromNanoseconds(start_ns)
    request.end.FromNanoseconds(end_ns)
    return request


def test_the_edges_of_the_int64_nanosecond_range_are_accepted() -> None:
    request = _trades_between(MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS)
    check_request(request)  # returns nothing; its verdict is whether it raises
    with pytest.raises(InvalidArgument, match=r"^start must lie between"):
        check_request(_trades_between(MIN_TIMESTAMP_NS - 1, MAX_TIMESTAMP_NS))
    with pytest.raises(InvalidArgument, match=r"^end must lie between"):
        check_request(_trades_between(MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS + 1))


def test_nanos_outside_a_second_are_refused() -> None:
    request = marketdata_pb2.GetTradesRequest(symbol="AAPL")
    request.start.nanos = -1
    with pytest.raises(InvalidArgument, match="start has nanos outside"):
        check_request(request)


def test_ordinary_requests_pass() -> None:
    order = execution_pb2.SubmitOrderRequest(symbol="AAPL", qty="10", client_order_id="é-ü-1")
    listing = execution_pb2.ListOrdersRequest(symbols=["AAPL", "MSFT"])
    # check_request returns nothing: its verdict is to raise or not, so each acceptance
    # is paired with the nearest refusal below.
    check_request(order)
    check_request(listing)
    # The nearest refusals: the same requests with one NUL character added.
    with pytest.raises(InvalidArgument, match=r"^client_order_id must not contain a NUL"):
        check_request(
            execution_pb2.SubmitOrderRequest(symbol="AAPL", qty="10", client_order_id="é-ü-1\x00")
        )
    with pytest.raises(InvalidArgument, match=r"^symbols\[1\] must not contain a NUL"):
        check_request(execution_pb2.ListOrdersRequest(symbols=["AAPL", "MSFT\x00"]))
