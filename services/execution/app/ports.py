"""What the use cases need from outside the service, as typed protocols.

Adapters implement them (`services/execution/adapters/upstream.py` and
`risk_check.py` over gRPC); tests pass fakes. Nothing here knows how a call travels.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from cift.trading.fills import OpenOrders
from cift.trading.ledger import Balances, Position
from cift.trading.orders import Order
from cift.trading.vocabulary import ZERO, Instrument


class OrderEventKind(StrEnum):
    """What happened to an order, as its announced event says (the adapters encode it)."""

    NEW = "new"
    ACCEPTED = "accepted"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class MarketClock:
    now_ns: int
    is_open: bool
    # None when the calendar never closes (the simulator's always-open default).
    next_close_ns: int | None
    next_open_ns: int | None = None
    # The last close before now: after a restart, whether its post-market still runs.
    previous_close_ns: int | None = None


class Market(Protocol):
    async def instrument(self, symbol: str) -> Instrument: ...

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]: ...

    async def clock(self) -> MarketClock: ...

    async def previous_closes(
        self, symbols: list[str], day_start_ns: int
    ) -> dict[str, Decimal]: ...


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What order entry reads about an account before it places an order in one symbol."""

    # The ledger's buying power stored with the account, before reservations (None
    # for an account opened before it was stored, until the service starts again).
    buying_power: Decimal | None
    reserved: Decimal
    gross_cost: Decimal
    # The account's last order-event sequence: the order's event will carry the next.
    event_seq: int
    position_qty: Decimal
    # The order already submitted under the same client_order_id, if any.
    existing_order_id: str | None
    # The account's figures and the symbol's position as read: what the fill of an
    # order that fills as it is booked expects to find (None: not read).
    balances: Balances | None = None
    position: Position | None = None

    @property
    def available(self) -> Decimal:
        """Buying power not held by open orders."""
        return max(ZERO, (self.buying_power or ZERO) - self.reserved)


class Risk(Protocol):
    async def check(self, order: Order, context: OrderContext, open_orders: OpenOrders) -> None:
        """Return when the risk service approves `order`; raise its refusal otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class AccountSettings:
    opening_cash: Decimal
    margin_multiplier: Decimal
