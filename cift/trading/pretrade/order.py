"""The order under check, as risk sees it.

Risk never owns orders (execution does); it only judges one that is about to be
accepted. These types are plain values so every rule can be tested without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from cift.trading.orders import OrderTerms
from cift.trading.vocabulary import OrderType, Side, TimeInForce


@dataclass(frozen=True, slots=True)
class OrderToCheck(OrderTerms):
    """An order as submitted, for `account_id` (a keyword: it follows the order's terms)."""

    account_id: str = field(kw_only=True)


class CheckedOrder(Protocol):
    """What the rules read of an order: the terms and the account, nothing else.

    `OrderToCheck` is the risk service's copy; the backtest's pre-trade gate hands
    its execution-side `Order` (the same fields) straight to the rules instead of
    copying it into one per check.
    """

    @property
    def account_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def order_type(self) -> OrderType: ...
    @property
    def time_in_force(self) -> TimeInForce: ...
    @property
    def qty(self) -> Decimal | None: ...
    @property
    def notional(self) -> Decimal | None: ...
    @property
    def limit_price(self) -> Decimal | None: ...
    @property
    def stop_price(self) -> Decimal | None: ...
    @property
    def trail_price(self) -> Decimal | None: ...
    @property
    def trail_percent(self) -> Decimal | None: ...
