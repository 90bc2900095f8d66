"""Order and fill events as outbox rows: the one place execution's events become bytes.

Each event is serialized whole here, its per-account sequence included, and leaves
as an `OutgoingEvent`; the SQL adapters store those bytes (in `order_events` for
StreamOrderUpdates resumption and in the outbox) and never build them.
"""

from __future__ import annotations

import json
from decimal import Decimal

from cift.execution.v1 import events_pb2
from cift.runtime.kafka import TOPIC_FILLS, TOPIC_ORDERS, encode_headers, new_event_id
from cift.runtime.order_wire import enum_to_pb
from cift.runtime.timestamps import timestamp
from cift.trading.fills import Fill
from cift.trading.ledger import Position
from cift.trading.orders import Order
from services.execution.adapters.wire import dec, fill_message, order_message
from services.execution.app.ports import OrderEventKind
from services.execution.app.store_ports import OutgoingEvent

KIND_TO_PB = enum_to_pb(OrderEventKind, events_pb2.OrderEventType, "ORDER_EVENT_TYPE_")


def order_event_row(
    order: Order,
    kind: OrderEventKind,
    sequence: int,
    *,
    fill: Fill | None = None,
    commission: Decimal | None = None,
) -> OutgoingEvent:
    """An order's event, serialized whole (its account sequence included), as its outbox row.

    The same bytes are kept in `order_events` for StreamOrderUpdates resumption and
    handed to live subscribers.
    """
    event = events_pb2.OrderEvent(
        event_id=new_event_id(),
        account_id=order.account_id,
        type=KIND_TO_PB[kind],
        order=order_message(order, commission=commission),
        timestamp=timestamp(order.updated_ns or order.created_ns),
        sequence=sequence,
    )
    if fill is not None:
        event.fill.CopyFrom(fill_message(fill))
    return _outgoing(event, TOPIC_ORDERS, sequence)


def fill_event_row(fill: Fill, position: Position, cash: Decimal) -> OutgoingEvent:
    """A fill with the position and cash it left, as its outbox row on the fills topic."""
    event = events_pb2.FillEvent(
        event_id=new_event_id(),
        fill=fill_message(fill),
        position_qty=dec(position.qty),
        position_avg_entry_price=dec(position.avg_entry_price),
        cash=dec(cash),
    )
    return _outgoing(event, TOPIC_FILLS)


def _outgoing(
    message: events_pb2.OrderEvent | events_pb2.FillEvent, topic: str, sequence: int = 0
) -> OutgoingEvent:
    """Every outbox row of this service is made here, so they are all written one way."""
    headers = {name: value.decode() for name, value in encode_headers(message, message.event_id)}
    return OutgoingEvent(
        event_id=message.event_id,
        topic=topic,
        schema_name=message.DESCRIPTOR.full_name,
        payload=message.SerializeToString(),
        headers_json=json.dumps(headers),
        sequence=sequence,
    )
