"""Coalescing of concurrent requests into batches, for statements that cost a round trip each.

Under load many SubmitOrders wait at the same moment for the same kind of
database statement. Sending them as one statement (one round trip, one commit)
is what lets throughput grow past one statement per order. A request never
waits for company: when a batch slot is free it goes at once, alone if need be;
requests that arrive while every slot is busy form the next batch. So the
latency added when quiet is nil, and batches grow only with the backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Histogram

I = TypeVar("I")  # noqa: E741 - the conventional name of an item type
R = TypeVar("R")

BatchRunner = Callable[[list[I]], Awaitable[list[R | BaseException]]]

# Throughput under load depends on how full the batches are: a stage that gets
# faster forms smaller batches, and can cost more per item in all.
BATCH_SIZE = Histogram(
    "cift_execution_batch_size",
    "Items per batch (one statement, one book update or one risk CheckOrders message), by kind.",
    ["batch"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


class Coalescer(Generic[I, R]):
    """Runs `run` over batches of submitted items; each caller gets its own item's result.

    `run` returns one result (or exception) per item, in order. With `key`, a
    batch never holds two items of one key (later ones wait for a later batch,
    in arrival order), for statements that must not see one row twice.
    """

    def __init__(
        self,
        run: BatchRunner[I, R],
        *,
        name: str,
        max_batch: int = 64,
        max_in_flight: int = 4,
        key: Callable[[I], Hashable] | None = None,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._key = key
        self._sizes = BATCH_SIZE.labels(name)
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._in_flight = 0
        self.batches = 0  # observability: batches run so far
        self.items = 0

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._in_flight < self._max_in_flight:
            self._launch()
        return await future

    def _take(self) -> list[tuple[I, asyncio.Future[R]]]:
        if self._key is None:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            return batch
        batch, rest, keys = [], [], set()
        for entry in self._waiting:
            key = self._key(entry[0])
            if key in keys or len(batch) >= self._max_batch:
                rest.append(entry)
            else:
                keys.add(key)
                batch.append(entry)
        self._waiting = rest
        return batch

    def _launch(self) -> None:
        batch = self._take()
        if not batch:
            return
        self._in_flight += 1
        self.batches += 1
        self.items += len(batch)
        self._sizes.observe(len(batch))
        asyncio.get_running_loop().create_task(self._execute(batch))

    async def _execute(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except BaseException as failure:
            results = [failure] * len(batch)
        finally:
            self._in_flight -= 1
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the caller was cancelled
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        while self._waiting and self._in_flight < self._max_in_flight:
            self._launch()
