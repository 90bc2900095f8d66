"""The one map between the trading vocabulary and the order protos' enum values.

Execution encodes orders with these and risk decodes the orders it checks with
them; written once so a new order type or time in force cannot be accepted by one
service and refused by the other. The same holds for the quantity and price terms,
read from every order message by `price_terms_from_wire`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, TypedDict

from cift.execution.v1 import orders_pb2
from cift.runtime.money import parse_decimal
from cift.trading.orders import OrderClass, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

SIDE_TO_PB = {Side.BUY: orders_pb2.ORDER_SIDE_BUY, Side.SELL: orders_pb2.ORDER_SIDE_SELL}
SIDE_FROM_PB = {v: k for k, v in SIDE_TO_PB.items()}
TYPE_TO_PB = {
    OrderType.MARKET: orders_pb2.ORDER_TYPE_MARKET,
    OrderType.LIMIT: orders_pb2.ORDER_TYPE_LIMIT,
    OrderType.STOP: orders_pb2.ORDER_TYPE_STOP,
    OrderType.STOP_LIMIT: orders_pb2.ORDER_TYPE_STOP_LIMIT,
    OrderType.TRAILING_STOP: orders_pb2.ORDER_TYPE_TRAILING_STOP,
}
TYPE_FROM_PB = {v: k for k, v in TYPE_TO_PB.items()}
TIF_TO_PB = {
    TimeInForce.DAY: orders_pb2.TIME_IN_FORCE_DAY,
    TimeInForce.GTC: orders_pb2.TIME_IN_FORCE_GTC,
    TimeInForce.IOC: orders_pb2.TIME_IN_FORCE_IOC,
    TimeInForce.FOK: orders_pb2.TIME_IN_FORCE_FOK,
    TimeInForce.GTD: orders_pb2.TIME_IN_FORCE_GTD,
    TimeInForce.OPG: orders_pb2.TIME_IN_FORCE_OPG,
    TimeInForce.CLS: orders_pb2.TIME_IN_FORCE_CLS,
}
TIF_FROM_PB = {v: k for k, v in TIF_TO_PB.items()}
CLASS_TO_PB = {
    OrderClass.SIMPLE: orders_pb2.ORDER_CLASS_SIMPLE,
    OrderClass.BRACKET: orders_pb2.ORDER_CLASS_BRACKET,
    OrderClass.OCO: orders_pb2.ORDER_CLASS_OCO,
    OrderClass.OTO: orders_pb2.ORDER_CLASS_OTO,
}
CLASS_FROM_PB = {
    orders_pb2.ORDER_CLASS_UNSPECIFIED: OrderClass.SIMPLE,
    **{v: k for k, v in CLASS_TO_PB.items()},
}
STATUS_TO_PB = {
    OrderStatus.NEW: orders_pb2.ORDER_STATUS_NEW,
    OrderStatus.ACCEPTED: orders_pb2.ORDER_STATUS_ACCEPTED,
    OrderStatus.PARTIALLY_FILLED: orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
    OrderStatus.FILLED: orders_pb2.ORDER_STATUS_FILLED,
    OrderStatus.CANCELED: orders_pb2.ORDER_STATUS_CANCELED,
    OrderStatus.EXPIRED: orders_pb2.ORDER_STATUS_EXPIRED,
    OrderStatus.REJECTED: orders_pb2.ORDER_STATUS_REJECTED,
    OrderStatus.REPLACED: orders_pb2.ORDER_STATUS_REPLACED,
    OrderStatus.HELD: orders_pb2.ORDER_STATUS_HELD,
}


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
