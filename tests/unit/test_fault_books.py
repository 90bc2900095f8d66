"""The fault suite's check of confirmed orders: each exists, on its account, exactly once."""

from __future__ import annotations

from typing import Any

from tests.faults.books import confirmed_problems


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
