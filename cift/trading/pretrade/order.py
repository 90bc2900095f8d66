"""The order under check, as risk sees it.

Risk never owns orders (execution does); it only judges one that is about to be
accepted. These types are plain values so every rule can be tested without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.trading.vocabulary import OrderType, Side, TimeInForce


@dataclass(frozen=True, slots=True)
class OrderToCheck:
    """An order as submitted: exactly one of `qty` (shares) or `notional` (dollars)."""

    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce = TimeInForce.DAY
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
