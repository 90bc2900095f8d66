"""The one writer of execution's announced events: the order-event log and the outbox.

Every statement that announces a change (submit, an order event alone, a fill) queues
its events with SQL made here, inside that statement, so the change and its events
commit together in one round trip. The statements differ only in where an event's
columns come from — the statement's parameters or its input rows — which
`EventCells` names; the INSERTs themselves are written once (the outbox's in
`cift.runtime.outbox.OUTBOX_INSERT`, shared with every other service).
"""

from __future__ import annotations

from dataclasses import dataclass

from cift.runtime.outbox import OUTBOX_INSERT
from services.execution.app.store_ports import OutgoingEvent

# Kept for StreamOrderUpdates resumption: the same bytes the outbox publishes.
LOG_INSERT = "INSERT INTO order_events (account_id, sequence, payload)"


@dataclass(frozen=True, slots=True)
class EventCells:
    """SQL expressions of one event's outbox columns in the statement that writes it."""

    event_id: str
    topic: str
    key: str
    schema_name: str
    payload: str
    headers: str  # JSON text, cast to jsonb here

    def columns(self, *, typed: bool = False) -> str:
        """The cells in the outbox's column order; `typed` casts each to its column's type,
        for rows the INSERT does not type itself (a VALUES list read as a table)."""
        text, payload = ("::text", "::bytea") if typed else ("", "")
        return (
            f"{self.event_id}{text}, {self.topic}{text}, {self.key}{text}, "
            f"{self.schema_name}{text}, {self.payload}{payload}, {self.headers}::jsonb"
        )


def event_params(first: int, *, key: str) -> EventCells:
    """One event's five parameters, numbered from `first` in the order of `event_args`."""
    return EventCells(
        event_id=f"${first}",
        topic=f"${first + 1}",
        key=key,
        schema_name=f"${first + 2}",
        payload=f"${first + 3}",
        headers=f"${first + 4}",
    )


def event_args(event: OutgoingEvent) -> tuple[str, str, str, bytes, str]:
    """The values for `event_params`' five parameters."""
    return (event.event_id, event.topic, event.schema_name, event.payload, event.headers_json)


def queue_values(*events: EventCells) -> str:
    """Queue events given as parameters, in this order (the relay publishes in it)."""
    return f"{OUTBOX_INSERT} VALUES " + ", ".join(f"({e.columns()})" for e in events)


def queue_values_if(source: str, *events: EventCells) -> str:
    """Queue events given as parameters, in this order, once per row of `source` (a CTE
    of one row or none)."""
    rows = ", ".join(f"({e.columns(typed=True)})" for e in events)
    return f"{OUTBOX_INSERT} SELECT queued.* FROM (VALUES {rows}) AS queued, {source}"


def queue_select(event: EventCells, source: str) -> str:
    """Queue one event per row of `source` (a FROM clause of the statement's input)."""
    return f"{OUTBOX_INSERT} SELECT {event.columns()} {source}"


def log_values(account_id: str, sequence: str, payload: str) -> str:
    """Keep one order event, given as parameters, for resumption."""
    return f"{LOG_INSERT} VALUES ({account_id}, {sequence}, {payload})"


def log_select(account_id: str, sequence: str, payload: str, source: str) -> str:
    """Keep one order event per row of `source` for resumption."""
    return f"{LOG_INSERT} SELECT {account_id}, {sequence}, {payload} {source}"
