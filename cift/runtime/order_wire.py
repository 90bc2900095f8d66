"""The one map between the trading vocabulary and the order protos' enum values.

Execution encodes orders with these and risk decodes the orders it checks with
them; written once so a new order type or time in force cannot be accepted by one
service and refused by the other. The same holds for the quantity and price terms,
read from every order message by `price_terms_from_wire`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Protocol, TypedDict, TypeVar

from cift.execution.v1 import orders_pb2
from cift.runtime.money import parse_decimal
from cift.trading.orders import OrderClass, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

E = TypeVar("E", bound=Enum)
V = TypeVar("V", bound=int)


def enum_to_pb(vocabulary: type[E], proto_enum: _EnumTypeWrapper[V], prefix: str) -> dict[E, V]:
    """Each member's proto value: the value named `prefix` + the member's name
    (buf STANDARD: `Side.BUY` is `ORDER_SIDE_BUY`).

    Raises at import when a member has no proto value, so a vocabulary word cannot be
    added without its wire form.
    """
    return {member: proto_enum.Value(prefix + member.name) for member in vocabulary}


def enum_from_pb(to_pb: Mapping[E, V]) -> dict[V, E]:
    """The decoding map of an encoding map (proto values it does not name stay unknown)."""
    return {value: member for member, value in to_pb.items()}


SIDE_TO_PB = enum_to_pb(Side, orders_pb2.OrderSide, "ORDER_SIDE_")
SIDE_FROM_PB = enum_from_pb(SIDE_TO_PB)
TYPE_TO_PB = enum_to_pb(OrderType, orders_pb2.OrderType, "ORDER_TYPE_")
TYPE_FROM_PB = enum_from_pb(TYPE_TO_PB)
TIF_TO_PB = enum_to_pb(TimeInForce, orders_pb2.TimeInForce, "TIME_IN_FORCE_")
TIF_FROM_PB = enum_from_pb(TIF_TO_PB)
CLASS_TO_PB = enum_to_pb(OrderClass, orders_pb2.OrderClass, "ORDER_CLASS_")
# An order that names no class is a simple one.
CLASS_FROM_PB = {orders_pb2.ORDER_CLASS_UNSPECIFIED: OrderClass.SIMPLE, **enum_from_pb(CLASS_TO_PB)}
STATUS_TO_PB = enum_to_pb(OrderStatus, orders_pb2.OrderStatus, "ORDER_STATUS_")


class PriceTerms(TypedDict):
    """An order's quantity and price terms, under the names `OrderRequest` and
    `OrderToCheck` (and the order protos) give them; None where the message left one empty."""

    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None


class PricedMessage(Protocol):
    """An order message carrying the terms as decimal strings (empty when not given)."""

    @property
    def qty(self) -> str: ...
    @property
    def notional(self) -> str: ...
    @property
    def limit_price(self) -> str: ...
    @property
    def stop_price(self) -> str: ...
    @property
    def trail_price(self) -> str: ...
    @property
    def trail_percent(self) -> str: ...


def price_terms_from_wire(message: PricedMessage) -> PriceTerms:
    """The terms of a submitted order or an order to check, each checked as a decimal.

    Read in the fields' order, so the first bad field is the one an error names.
    """
    return PriceTerms(
        qty=parse_decimal("qty", message.qty, allow_empty=True),
        notional=parse_decimal("notional", message.notional, allow_empty=True),
        limit_price=parse_decimal("limit_price", message.limit_price, allow_empty=True),
        stop_price=parse_decimal("stop_price", message.stop_price, allow_empty=True),
        trail_price=parse_decimal("trail_price", message.trail_price, allow_empty=True),
        trail_percent=parse_decimal("trail_percent", message.trail_percent, allow_empty=True),
    )
