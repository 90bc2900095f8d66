"""Checks every request message gets before any handler sees it, whatever the RPC.

Some input is valid protobuf yet no service can store or compute with it: a NUL
character in a string (PostgreSQL's text types refuse it, so it surfaced as a 500
from the database driver) and a timestamp outside the nanoseconds-since-epoch range
every service converts timestamps to (int64, years 1677 to 2262; beyond it the
arithmetic overflows). The interceptor runs `check_request` on each request, so
each such value is refused once, here, as INVALID_ARGUMENT naming the field, rather
than route by route.

This module must never import grpc: it only reads messages and raises domain errors.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from cift.runtime.errors import InvalidArgument

# Nanoseconds since the epoch in an int64: 1677-09-21T00:12:43Z to 2262-04-11T23:47:16Z.
MIN_TIMESTAMP_NS = -(2**63)
MAX_TIMESTAMP_NS = 2**63 - 1
NANOS_PER_SECOND = 1_000_000_000
TIMESTAMP_TYPE = "google.protobuf.Timestamp"


def check_request(message: Message) -> None:
    """INVALID_ARGUMENT naming the first field no service can take; else nothing."""
    _check_message(message, "")


def _check_message(message: Message, path: str) -> None:
    if message.DESCRIPTOR.full_name == TIMESTAMP_TYPE:
        _check_timestamp(message, path)
        return
    # ListFields is implemented in C and yields only the fields that are set.
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _check_map(field, value, name)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _check_value(field, item, f"{name}[{index}]")
        else:
            _check_value(field, value, name)


def _check_map(field: FieldDescriptor, entries: Any, name: str) -> None:
    entry_type = field.message_type
    assert entry_type is not None  # a map field's entries are messages
    value_field = entry_type.fields_by_name["value"]
    for key, item in entries.items():
        if isinstance(key, str):
            _check_text(key, f"{name} key")
        _check_value(value_field, item, f"{name}[{key!r}]")


def _check_value(field: FieldDescriptor, value: Any, name: str) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        _check_text(value, name)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        _check_message(value, f"{name}.")


def _check_text(text: str, name: str) -> None:
    if "\x00" in text:
        raise InvalidArgument(f"{name} must not contain a NUL character (\\u0000).")


def _check_timestamp(stamp: Message, path: str) -> None:
    name = path.rstrip(".") or "timestamp"
    seconds: int = stamp.seconds  # type: ignore[attr-defined]
    nanos: int = stamp.nanos  # type: ignore[attr-defined]
    if not 0 <= nanos < NANOS_PER_SECOND:
        raise InvalidArgument(f"{name} has nanos outside 0..999999999.")
    total_ns = seconds * NANOS_PER_SECOND + nanos
    if not MIN_TIMESTAMP_NS <= total_ns <= MAX_TIMESTAMP_NS:
        raise InvalidArgument(
            f"{name} must lie between 1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z."
        )
