"""The fault suite's judges: confirmed orders exist once, and what a client may be answered."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.books import confirmed_problems
from tests.faults.load import is_bad_answer, retry_advice_s


def _order(order_id: str, account: str, client_order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "account_id": account, "client_order_id": client_order_id}


def test_books_holding_each_confirmed_order_once_have_no_problem() -> None:
    confirmed = {"o1": ("a1", "c1"), "o2": ("a2", "c1")}
    orders = [_order("o1", "a1", "c1"), _order("o2", "a2", "c1"), _order("o3", "a1", "c3")]
    assert confirmed_problems(confirmed, orders) == []


def test_a_retry_that_placed_a_second_order_is_a_duplicate() -> None:
    # The first answer was lost, the client retried with the same id, and got o2 back.
    confirmed = {"o2": ("a1", "c1")}
    orders = [_order("o1", "a1", "c1"), _order("o2", "a1", "c1")]
    assert confirmed_problems(confirmed, orders) == [
        "client order c1 on a1 is duplicated: 2 orders"
    ]


def test_a_confirmed_order_missing_or_on_another_account_is_reported() -> None:
    confirmed = {"o1": ("a1", "c1"), "o2": ("a1", "c2")}
    orders = [_order("o2", "a2", "c2")]
    assert confirmed_problems(confirmed, orders) == [
        "order o1 (c1) was confirmed but is lost",
        "order o2 is on a2, not a1",
    ]


@pytest.mark.parametrize(
    ("status", "text", "bad"),
    [
        (200, '{"order": {}}', False),
        (400, '{"code": 3, "message": "qty must be a plain decimal"}', False),
        (503, '{"code": 14, "message": "execution is restarting; retry"}', False),
        (500, '{"code": 13, "message": "internal error"}', True),
        (501, "", True),
        (503, "Traceback (most recent call last):\n  File ...", True),
        (400, "Traceback (most recent call last):\n  File ...", True),
    ],
)
def test_a_client_may_see_refusals_and_retryable_outages_but_no_500_or_stack_trace(
    status: int, text: str, bad: bool
) -> None:
    assert is_bad_answer(status, text) is bad


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("1", 1.0), ("30", 30.0), (None, None), ("", None), ("1.5", None), ("\u0661", None)],
)
def test_retry_advice_counts_only_whole_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_advice_s(header) == seconds
