"""Per-key locks: one holder per key, keys independent, nothing left behind."""

from __future__ import annotations

import asyncio

import pytest

from cift.runtime.keyed_locks import KeyedLocks


async def test_a_key_has_one_holder_at_a_time_in_arrival_order() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []

    async def hold(name: str) -> None:
        release = await locks.acquire("account-1")
        order.append(f"{name} in")
        await asyncio.sleep(0.001)
        order.append(f"{name} out")
        release()

    await asyncio.gather(hold("a"), hold("b"), hold("c"))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert len(locks) == 0


async def test_other_keys_do_not_wait() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    release_a = await locks.acquire("a")
    release_b = await asyncio.wait_for(locks.acquire("b"), 1)
    assert len(locks) == 2
    release_a()
    release_b()
    assert len(locks) == 0


async def test_a_release_called_twice_releases_once() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    first = await locks.acquire("a")
    waiter = asyncio.ensure_future(locks.acquire("a"))
    await asyncio.sleep(0)
    first()
    second = await asyncio.wait_for(waiter, 1)
    first()  # must not free the key from under its new holder
    third = asyncio.ensure_future(locks.acquire("a"))
    await asyncio.sleep(0.01)
    assert not third.done()
    second()
    (await asyncio.wait_for(third, 1))()
    assert len(locks) == 0


async def test_a_waiter_cancelled_before_its_turn_leaves_nothing_behind() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    release = await locks.acquire("a")
    waiter = asyncio.ensure_future(locks.acquire("a"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release()
    assert len(locks) == 0
    (await asyncio.wait_for(locks.acquire("a"), 1))()
