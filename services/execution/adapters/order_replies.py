"""Stored orders as reply messages: each with its timestamps, a group's parent with its legs,
and an order's fills with their explanations.

Replies of GetOrder, ListOrders and order entry; the rows come from `app/reads.py`,
the messages from `wire`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from cift.execution.v1 import orders_pb2
from cift.runtime.order_wire import SIDE_TO_PB
from cift.runtime.timestamps import timestamp, timestamp_of
from cift.trading.orders import Order
from cift.trading.vocabulary import Side
from services.execution.adapters import fills_sql, order_rows
from services.execution.adapters.wire import dec, explanation_message, order_message


def orders_with_legs(rows: Sequence[Any], legs: Sequence[Any]) -> list[orders_pb2.Order]:
    """Orders as replies: each parent of a bracket, OCO or OTO order with its legs."""
    messages = [order_reply(row) for row in rows]
    by_parent: dict[str, list[orders_pb2.Order]] = {}
    for leg in legs:
        by_parent.setdefault(leg["parent_id"], []).append(order_reply(leg))
    for message in messages:
        message.legs.extend(by_parent.get(message.id, []))
    return messages


def order_reply(row: object) -> orders_pb2.Order:
    record = row  # asyncpg.Record
    order = order_rows.order_from_row(record)  # type: ignore[arg-type]
    message = order_message(order, commission=record["commission"])  # type: ignore[index]
    for field, column in (
        ("filled_at", "filled_at"),
        ("canceled_at", "canceled_at"),
        ("expired_at", "expired_at"),
        ("replaced_at", "replaced_at"),
    ):
        stamp = timestamp_of(record[column])  # type: ignore[index]
        if stamp is not None:
            getattr(message, field).CopyFrom(stamp)
    return message


def completed_order_reply(order: Order, commission: Decimal) -> orders_pb2.Order:
    """A filled order as its last fill left it, the reply a read back of its row would give.

    Its row's `filled_at` is that fill's time, which is also when the order last changed.
    """
    message = order_message(order, commission=commission)
    message.filled_at.CopyFrom(timestamp(order.updated_ns))
    return message


def fill_replies(rows: Sequence[Any]) -> list[orders_pb2.Fill]:
    """Stored fills as replies, each with its explanation."""
    return [fill_reply(row) for row in rows]


def fill_reply(row: Any) -> orders_pb2.Fill:
    message = orders_pb2.Fill(
        id=row["fill_id"],
        order_id=row["order_id"],
        account_id=row["account_id"],
        symbol=row["symbol"],
        side=SIDE_TO_PB[Side(row["side"])],
        qty=dec(row["qty"]),
        price=dec(row["price"]),
        commission=dec(row["commission"]),
        timestamp=timestamp_of(row["occurred_at"]),
    )
    explanation = fills_sql.explanation_from_row(row)
    if explanation is not None:
        message.explanation.CopyFrom(explanation_message(explanation))
    return message
