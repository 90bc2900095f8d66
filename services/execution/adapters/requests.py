"""Request fields the execution API shares across calls, decoded once: pages and their
cursors, periods, symbol lists, optional decimals and the account a caller targets.

Part of the gRPC edge: each helper refuses a bad field with INVALID_ARGUMENT (or
PERMISSION_DENIED for another's account), naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cift.execution.v1 import execution_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.identity import Identity
from cift.runtime.page_cursors import decode_cursor, encode_cursor
from services.execution.app.store_ports import PageQuery

DEFAULT_PAGE = 100
MAX_PAGE = 500
ACTIVITY_TO_PB = {
    "fill": execution_pb2.ACTIVITY_TYPE_FILL,
    "deposit": execution_pb2.ACTIVITY_TYPE_DEPOSIT,
    "withdrawal": execution_pb2.ACTIVITY_TYPE_WITHDRAWAL,
    "fee": execution_pb2.ACTIVITY_TYPE_FEE,
}
ACTIVITY_FROM_PB = {v: k for k, v in ACTIVITY_TO_PB.items()}
PERIOD_UNITS = {"D": 1, "W": 7, "M": 30, "A": 365}
# A count of ASCII digits (str.isdigit would take "\u0661") and a unit; the history may
# reach back at most this far, which keeps the start inside what a datetime holds.
PERIOD_FORMAT = re.compile(r"([0-9]{1,6})([DWMA])")
MAX_PERIOD_DAYS = 100 * 365
TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}


def symbol_list(values: list[str] | tuple[str, ...]) -> list[str]:
    return [part.strip().upper() for value in values for part in value.split(",") if part.strip()]


def target_account(identity: Identity, requested: str) -> str:
    if requested and requested != identity.account_id:
        identity.require_account(requested)
        return requested
    return identity.account_id


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size cannot be negative.")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def next_page_token(rows: Sequence[Any], limit: int, time_key: str, id_key: str) -> str:
    """The cursor after the page's last row, when the query found one row more than a page."""
    if len(rows) <= limit:
        return ""
    last = rows[limit - 1]
    return encode_cursor(last[time_key], last[id_key])


def time_or_none(stamp: object, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None  # type: ignore[attr-defined, no-any-return]


def period_days(period: str) -> int:
    """Days a portfolio-history period ("1D", "2W", "3M", "1A") spans; at most 100 years."""
    match = PERIOD_FORMAT.fullmatch(period)
    if match is None or int(match.group(1)) <= 0:
        raise InvalidArgument(
            f"period must be a positive number and D, W, M or A, such as 1M, not {period[:40]!r}."
        )
    days = int(match.group(1)) * PERIOD_UNITS[match.group(2)]
    if days > MAX_PERIOD_DAYS:
        raise InvalidArgument(f"period may span at most 100 years (100A), not {period!r}.")
    return days


def page_query(
    request: execution_pb2.ListOrdersRequest | execution_pb2.ListActivitiesRequest, limit: int
) -> PageQuery:
    """The page a list request asks for, one row more than `limit` to tell if another follows."""
    return PageQuery(
        after=time_or_none(request.after, request.HasField("after")),
        until=time_or_none(request.until, request.HasField("until")),
        cursor=decode_cursor(request.page_token),
        limit=limit + 1,
    )
