"""Async tests cancelled before pytest-timeout's limit, so a hang names the await it hung at.

pytest-timeout's own report of a hang inside the event loop shows the loop's `select`,
not the test's coroutine. Cancelling the test's coroutine a little earlier (at 80 % of
the limit that applies to it: the ini's `timeout`, or the test's own
`@pytest.mark.timeout(s)`) fails it with a traceback that ends at the stuck await, and
lets its context managers clean up so the rest of the run goes on. pytest-timeout stays
the backstop for a test blocked outside the loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

SHARE_OF_TIMEOUT = 0.8


def bound_async_tests(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            limit_s = SHARE_OF_TIMEOUT * timeout_of(item)
            if limit_s > 0:
                item.obj = cancelled_after(item.obj, limit_s, item.nodeid)


def timeout_of(item: pytest.Function) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def cancelled_after(
    test: Callable[..., Awaitable[Any]], limit_s: float, nodeid: str
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(limit_s):
                return await test(*args, **kwargs)
        except TimeoutError:
            pytest.fail(
                f"{nodeid} still running after {limit_s:g} s, so it was cancelled: the "
                "chained traceback above ends at the await it was waiting on"
            )

    return bounded
