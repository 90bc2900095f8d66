"""Kafka in and out: ticks decoded for the fill engine, orders and fills encoded as protobuf.

Also the one mapping between domain enums/values and their protobuf forms, used
by the gRPC edge as well, so an order reads the same on the wire and on the topic.
Publishing happens through the outbox (`cift.runtime.outbox.enqueue`) in the
transaction of the change; nothing here talks to the broker directly.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Any

from cift.execution.v1 import orders_pb2
from cift.marketdata.v1 import events_pb2 as md_events_pb2
from cift.runtime.kafka import Event
from cift.runtime.money import decimal_of_double, format_decimal
from cift.runtime.order_wire import (
    CLASS_TO_PB,
    SIDE_TO_PB,
    STATUS_TO_PB,
    TIF_TO_PB,
    TYPE_TO_PB,
    enum_to_pb,
)
from cift.runtime.timestamps import timestamp, timestamp_of_ns
from cift.trading.fills import Fill, FillExplanation, PriceSource, Quote, Trade
from cift.trading.orders import Order, OrderStatus


def dec(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value)


def order_terms(order: Order) -> dict[str, Any]:
    """An order's side, type, time in force and price terms, as the fields of the same
    names in `orders_pb2.Order` and `risk_pb2.CheckOrderRequest`."""
    return {
        "side": SIDE_TO_PB[order.side],
        "type": TYPE_TO_PB[order.order_type],
        "time_in_force": TIF_TO_PB[order.time_in_force],
        "notional": dec(order.notional),
        "limit_price": dec(order.limit_price),
        "stop_price": dec(order.stop_price),
        "trail_price": dec(order.trail_price),
        "trail_percent": dec(order.trail_percent),
    }


def order_message(
    order: Order, *, commission: Decimal | None = None, water_mark: Decimal | None = None
) -> orders_pb2.Order:
    message = orders_pb2.Order(
        id=order.order_id,
        client_order_id=order.client_order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        qty=dec(order.qty if order.qty is not None else (order.filled_qty or None)),
        filled_qty=dec(order.filled_qty),
        filled_avg_price=dec(order.filled_avg_price),
        hwm=dec(water_mark if water_mark is not None else order.water_mark),
        status=STATUS_TO_PB[order.status],
        commission=dec(commission if commission is not None else Decimal(0)),
        replaced_by=order.replaced_by or "",
        replaces=order.replaces or "",
        created_at=timestamp(order.created_ns),
        updated_at=timestamp(order.updated_ns or order.created_ns),
        submitted_at=timestamp(order.created_ns),
        extended_hours=order.extended_hours,
        order_class=CLASS_TO_PB[order.order_class],
        parent_order_id=order.parent_id or "",
        expire_at=timestamp_of_ns(order.expire_ns),
        **order_terms(order),
    )
    if order.status is OrderStatus.REJECTED:
        message.reject_reason = order.reason
    return message


PRICE_SOURCE_TO_PB = enum_to_pb(PriceSource, orders_pb2.FillPriceSource, "FILL_PRICE_SOURCE_")


# The explanation's fields encoded one by one below; every other one is a decimal,
# named alike in the message.
_EXPLANATION_OTHERS = ("source", "tick_sequence", "tick_ts_ns", "displayed_size_only")
EXPLANATION_DECIMALS = tuple(
    f.name for f in dataclasses.fields(FillExplanation) if f.name not in _EXPLANATION_OTHERS
)


def explanation_message(explanation: FillExplanation) -> orders_pb2.FillExplanation:
    e = explanation
    return orders_pb2.FillExplanation(
        price_source=PRICE_SOURCE_TO_PB[e.source],
        tick_sequence=e.tick_sequence,
        tick_timestamp=timestamp(e.tick_ts_ns),
        displayed_size_only=e.displayed_size_only,
        **{name: dec(getattr(e, name)) for name in EXPLANATION_DECIMALS},
    )


def fill_message(fill: Fill) -> orders_pb2.Fill:
    message = orders_pb2.Fill(
        id=fill.fill_id,
        order_id=fill.order_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=SIDE_TO_PB[fill.side],
        qty=dec(fill.qty),
        price=dec(fill.price),
        commission=dec(fill.commission),
        timestamp=timestamp(fill.ts_ns),
    )
    if fill.explanation is not None:
        message.explanation.CopyFrom(explanation_message(fill.explanation))
    return message


def decode_tick(message: md_events_pb2.TickEvent) -> tuple[Quote | Trade, int] | None:
    """The fill engine's view of a tick and its sequence, or None for an empty tick.

    Fills carry the tick's venue time; a feed that sends none gets the arrival time.
    """
    kind = message.WhichOneof("tick")
    if kind == "quote":
        q = message.quote
        return (
            Quote(
                q.symbol,
                decimal_of_double(q.bid),
                decimal_of_double(q.ask),
                decimal_of_double(q.bid_size),
                decimal_of_double(q.ask_size),
                q.timestamp.ToNanoseconds() or time.time_ns(),
                q.sequence,
            ),
            q.sequence,
        )
    if kind == "trade":
        t = message.trade
        return Trade(
            t.symbol,
            decimal_of_double(t.price),
            decimal_of_double(t.size),
            t.timestamp.ToNanoseconds(),
            t.sequence,
        ), t.sequence
    return None


def decode_ticks(events: list[Event]) -> list[tuple[Quote | Trade, int]]:
    """A batch of `marketdata.ticks.v1` records as the fill engine's ticks, in order.

    Records of another type and empty ticks are skipped.
    """
    ticks = []
    for event in events:
        if isinstance(event.message, md_events_pb2.TickEvent):
            decoded = decode_tick(event.message)
            if decoded is not None:
                ticks.append(decoded)
    return ticks
