"""One asyncio lock per key, for work that must not interleave for the same key only.

An order's buying-power reservation depends on the account's other open orders
in the symbol (a sell is covered by a long only up to the shares earlier sells
have not already promised), so two entries for one account and symbol must
follow each other while entries for other keys run side by side. A lock exists
only while someone holds or waits for it, so the map never grows with the
number of accounts ever seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Release = Callable[[], None]


class KeyedLocks(Generic[K]):
    def __init__(self) -> None:
        self._locks: dict[K, asyncio.Lock] = {}
        self._users: dict[K, int] = {}

    def __len__(self) -> int:
        """Keys held or waited for now."""
        return len(self._locks)

    async def acquire(self, key: K) -> Release:
        """Wait for `key`'s turn; returns the release, which may outlive the caller's frame.

        The release is a callable rather than a context manager so that work the
        caller hands to a task (which must finish even if the caller is cancelled)
        can keep the key until that task is done. Calling it twice is harmless.
        """
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            await lock.acquire()
        except BaseException:
            self._leave(key)
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                lock.release()
                self._leave(key)

        return release

    def _leave(self, key: K) -> None:
        users = self._users[key] - 1
        if users:
            self._users[key] = users
        else:
            del self._users[key]
            del self._locks[key]
