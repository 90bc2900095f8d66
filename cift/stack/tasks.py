"""Run start-up steps side by side, failing fast.

When one of several services crashes at start, the operator should hear about it
at once, not after the others' timeouts; so the first failure cancels the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any


async def run_all(steps: Iterable[Coroutine[Any, Any, Any]]) -> None:
    """Await every step; the first to fail cancels the others and its error is raised."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
