"""The outbox relay queues again what a restarted broker lost, and only that.

The embedded broker keeps messages in memory and gets a new cluster id at every
start. The relay records which cluster acknowledged each row and, at start and every
`CHECK_BROKER_EVERY_S`, compares it with the broker's id now: rows of the retention
window acknowledged elsewhere are queued again, whether or not anything new is
published (a broker restarted at the end of a burst lost the burst's last events).
"""

from __future__ import annotations

import contextlib

import pytest

from cift.runtime import outbox
from cift.runtime.kafka import Delivered
from cift.runtime.outbox import OutboxRelay


class Broker:
    """The producer as the broker check sees it: the cluster ids it answers, in turn."""

    def __init__(self, *ids: str | None) -> None:
        self.ids = list(ids)

    async def cluster_id(self) -> str | None:
        return self.ids.pop(0) if len(self.ids) > 1 else self.ids[0]


class Pool:
    """Records the re-queue statements' arguments; answers how many rows they queued."""

    def __init__(self, queued: int = 2) -> None:
        self.requeued: list[tuple[object, ...]] = []
        self.queued = queued

    async def fetchval(self, _query: str, *args: object) -> int:
        self.requeued.append(args)
        return self.queued


@pytest.fixture(autouse=True)
def check_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "CHECK_BROKER_EVERY_S", 0.0)


def not_on(pool: Pool) -> list[object]:
    """The cluster each re-queue spared (None: it queued the whole window)."""
    return [args[1] for args in pool.requeued]


async def test_at_start_rows_another_cluster_acknowledged_are_queued_again() -> None:
    pool = Pool()
    relay = OutboxRelay(pool, Broker("cift-b"), retention_s=120.0)  # type: ignore[arg-type]
    await relay._requeue_what_the_broker_lost()
    # A previous process may have published to an older store; rows on this one stay.
    assert pool.requeued == [(120.0, "cift-b")]


async def test_the_same_broker_costs_no_requeue() -> None:
    pool = Pool()
    relay = OutboxRelay(pool, Broker("cift-a"))  # type: ignore[arg-type]
    for _ in range(3):
        await relay._requeue_what_the_broker_lost()
    assert not_on(pool) == ["cift-a"]  # the start's check only


async def test_a_new_cluster_id_queues_again_with_nothing_new_to_publish() -> None:
    pool = Pool()
    relay = OutboxRelay(pool, Broker("cift-a", "cift-a", "cift-b", "cift-b"))  # type: ignore[arg-type]
    for _ in range(4):
        await relay._requeue_what_the_broker_lost()
    assert not_on(pool) == ["cift-a", "cift-b"]


async def test_offsets_going_back_on_the_same_cluster_queue_the_whole_window() -> None:
    pool = Pool()
    relay = OutboxRelay(pool, Broker("cift-a"))  # type: ignore[arg-type]
    await relay._requeue_what_the_broker_lost()
    relay._broker_lost_events = True  # a publish got an offset at or below an acknowledged one
    await relay._requeue_what_the_broker_lost()
    assert not_on(pool) == ["cift-a", None]
    assert not relay._broker_lost_events


async def test_a_broker_without_a_cluster_id_relies_on_offsets_alone() -> None:
    pool = Pool()
    relay = OutboxRelay(pool, Broker(None))  # type: ignore[arg-type]
    await relay._requeue_what_the_broker_lost()
    assert pool.requeued == []


class FailingOncePool(Pool):
    """A pool whose first statement meets a connection the restarted server dropped."""

    async def fetchval(self, _query: str, *args: object) -> int:
        if not self.requeued:
            self.requeued.append(args)
            raise ConnectionResetError("connection was closed in the middle of operation")
        return await super().fetchval(_query, *args)


async def test_a_failed_relay_again_is_tried_again_on_the_next_pass() -> None:
    pool = FailingOncePool(queued=3)
    relay = OutboxRelay(pool, producer=None)  # type: ignore[arg-type]
    relay._broker_lost_events = True  # the last pass saw an offset go back
    with contextlib.suppress(ConnectionResetError):
        await relay.relay_again()
    # The events are still to be queued again, so the next pass must try once more.
    assert relay._broker_lost_events
    assert await relay.relay_again() == 3
    assert not relay._broker_lost_events


async def test_a_failed_requeue_after_a_new_cluster_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "CHECK_BROKER_EVERY_S", 60.0)  # the retry cannot wait for it
    pool = FailingOncePool()
    relay = OutboxRelay(pool, Broker("cift-b"))  # type: ignore[arg-type]
    with contextlib.suppress(ConnectionResetError):
        await relay._requeue_what_the_broker_lost()
    await relay._requeue_what_the_broker_lost()
    assert not_on(pool) == ["cift-b", "cift-b"]


async def test_the_new_stores_offsets_are_not_taken_for_another_restart() -> None:
    pool = Pool()
    relay = OutboxRelay(pool, Broker("cift-a", "cift-b"))  # type: ignore[arg-type]
    await relay._requeue_what_the_broker_lost()
    relay._note_offsets([Delivered("fills", 0, 5)])
    await relay._requeue_what_the_broker_lost()  # cift-b: the window is queued again
    relay._note_offsets([Delivered("fills", 0, 0)])  # ... and relayed from offset 0
    assert not relay._broker_lost_events  # a second whole-window resend would be waste
