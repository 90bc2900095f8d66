"""Kafka consumers for tests, joined the way the stack's own services join.

The embedded broker holds a new member's group join for about half the session
timeout: with `EventConsumer`'s 10 s default (right for a real cluster) every test
consumer waited 5 s before its first record. A stack publishes the session its
services use in its settings (`StackInfo.env`); test consumers take that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cift.runtime.config import CommonConfig, load
from cift.runtime.kafka import EventConsumer
from cift.stack.launcher import StackInfo


def session_ms(info: StackInfo) -> int:
    """The consumer-group session a process pointed at `info` uses."""
    return load(CommonConfig, dict(info.env)).kafka_session_timeout_ms


def consumer(info: StackInfo, group: str, topics: Sequence[str], **options: Any) -> EventConsumer:
    """An `EventConsumer` of service "test" on `info`'s broker, with the stack's session."""
    options.setdefault("session_timeout_ms", session_ms(info))
    return EventConsumer(info.kafka_bootstrap, "test", group, topics, **options)
