"""A page token leads back to the row it was made after; any other token is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from cift.runtime.errors import InvalidArgument
from cift.runtime.page_cursors import decode_cursor, encode_cursor


def test_a_token_names_the_time_and_id_of_the_last_row_to_the_microsecond() -> None:
    moment = datetime(2026, 12, 7, 14, 30, 0, 123_456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, "ord-1|a")) == (moment, "ord-1|a")


def test_no_token_is_the_first_page() -> None:
    assert decode_cursor("") is None


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        base64.urlsafe_b64encode(b"not-a-time|ord-1").decode(),
        base64.urlsafe_b64encode(b"2026-12-07T14:30:00+00:00").decode(),  # no id
        base64.urlsafe_b64encode(b"\xff\xfe|ord-1").decode(),
    ],
)
def test_a_token_this_service_did_not_issue_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument, match="page_token is not one this service issued"):
        decode_cursor(token)
