"""Coalescing concurrent requests into batches: no waiting when quiet, batches under load."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from cift.runtime.coalesce import Coalescer


class Recorder:
    """A batch runner that records its batches and holds each until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, items: list[str]) -> list[str | BaseException]:
        self.batches.append(items)
        await self.gate.wait()
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


async def test_a_lone_request_runs_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run, name="test")
    assert await coalescer.submit("a") == "A"
    assert recorder.batches == [["a"]]


async def test_requests_arriving_while_every_slot_is_busy_form_the_next_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(recorder.run, name="test", max_in_flight=1)
    first = asyncio.create_task(coalescer.submit("a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(coalescer.submit(x)) for x in "bcd"]
    await asyncio.sleep(0)
    assert recorder.batches == [["a"]]
    recorder.gate.set()
    assert await asyncio.gather(first, *rest) == ["A", "B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


async def test_batch_sizes_are_exported_by_kind() -> None:
    labels = {"batch": "sizes-test"}

    def sample(name: str) -> float:
        # Counters live for the process: a rerun in the same process (mutmut) starts higher.
        return REGISTRY.get_sample_value(name, labels) or 0.0

    count, total = (
        sample("cift_execution_batch_size_count"),
        sample("cift_execution_batch_size_sum"),
    )
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(recorder.run, name="sizes-test", max_in_flight=1)
    tasks = [asyncio.create_task(coalescer.submit(x)) for x in "abcd"]
    await asyncio.sleep(0)
    recorder.gate.set()
    await asyncio.gather(*tasks)
    assert sample("cift_execution_batch_size_count") - count == 2
    assert sample("cift_execution_batch_size_sum") - total == 4


async def test_batches_are_capped_and_never_hold_one_key_twice() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(
        recorder.run, name="test", max_in_flight=1, max_batch=2, key=lambda item: item[0]
    )
    busy = asyncio.create_task(coalescer.submit("z0"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(coalescer.submit(x)) for x in ("a1", "a2", "b1", "c1")]
    await asyncio.sleep(0)
    recorder.gate.set()
    await asyncio.gather(busy, *waiting)
    assert recorder.batches == [["z0"], ["a1", "b1"], ["a2", "c1"]]


async def test_each_caller_gets_its_own_error_and_a_failed_batch_fails_all_of_it() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run, name="test")
    results = await asyncio.gather(
        coalescer.submit("ok"), coalescer.submit("bad"), return_exceptions=True
    )
    assert results[0] == "OK" and isinstance(results[1], ValueError)

    async def broken(items: list[str]) -> list[str | BaseException]:
        raise ConnectionError("database went away")

    failing: Coalescer[str, str] = Coalescer(broken, name="test")
    with pytest.raises(ConnectionError):
        await failing.submit("x")
