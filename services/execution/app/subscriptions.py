"""Order update subscriptions: each account's live StreamOrderUpdates queues.

A stalled reader's full queue is skipped, never waited on; it resumes from the
stored events by sequence.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

log = logging.getLogger(__name__)


class Subscriptions:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)

    def subscribe(self, account_id: str) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self._subscribers[account_id].add(queue)
        return queue

    def unsubscribe(self, account_id: str, queue: asyncio.Queue[bytes]) -> None:
        self._subscribers[account_id].discard(queue)

    def notify(self, account_id: str, payload: bytes) -> None:
        for queue in list(self._subscribers.get(account_id, ())):
            if queue.full():
                continue  # a stalled reader resumes from the stored events by sequence
            queue.put_nowait(payload)

    def notify_all(self, notices: list[tuple[str, bytes]]) -> None:
        for account_id, payload in notices:
            self.notify(account_id, payload)
