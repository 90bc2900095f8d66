"""The order under check, as risk sees it.

Risk never owns orders (execution does); it only judges one that is about to be
accepted. These types are plain values so every rule can be tested without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cift.trading.orders import OrderTerms


@dataclass(frozen=True, slots=True)
class OrderToCheck(OrderTerms):
    """An order as submitted, for `account_id` (a keyword: it follows the order's terms)."""

    account_id: str = field(kw_only=True)
