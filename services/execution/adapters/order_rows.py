"""Rows of the orders table ↔ `Order`."""

from __future__ import annotations

from typing import Any

import asyncpg

from cift.runtime.timestamps import to_datetime, to_ns
from cift.trading.orders import Order, OrderClass, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

OPEN = ("new", "held", "accepted", "partially_filled")


def order_columns(order: Order) -> tuple[Any, ...]:
    """An order's values in the column order every INSERT INTO orders here uses."""
    return (
        order.order_id,
        order.account_id,
        order.client_order_id,
        order.symbol,
        order.side.value,
        order.order_type.value,
        order.time_in_force.value,
        order.qty,
        order.notional,
        order.limit_price,
        order.stop_price,
        order.trail_price,
        order.trail_percent,
        order.status.value,
        order.reserved,
        order.replaces,
        to_datetime(order.created_ns),
    )


# Order fields stored as they are, in columns of the same names.
_AS_STORED = (
    "order_id", "account_id", "symbol", "qty", "notional", "limit_price", "stop_price",
    "trail_price", "trail_percent", "client_order_id", "filled_qty", "filled_notional",
    "fill_count", "triggered", "reserved", "replaces", "replaced_by", "reason", "water_mark",
    "extended_hours", "parent_id",
)  # fmt: skip


def order_from_row(row: asyncpg.Record) -> Order:
    return Order(
        side=Side(row["side"]),
        order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        created_ns=to_ns(row["created_at"]),
        status=OrderStatus(row["status"]),
        updated_ns=to_ns(row["updated_at"]),
        expire_ns=None if row["expire_at"] is None else to_ns(row["expire_at"]),
        order_class=OrderClass(row["order_class"]),
        **{name: row[name] for name in _AS_STORED},
    )
