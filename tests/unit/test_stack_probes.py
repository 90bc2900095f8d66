"""The Kafka probe and topic creation against brokers that are not there: fast, clear, quiet."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from cift.runtime import kafka
from cift.stack.errors import StackError
from cift.stack.kafka_broker import ensure_topics
from cift.stack.ports import LOOPBACK, free_ports
from cift.stack.probes import PROBE_TIMEOUT_S, ProbeFailed, kafka_servers, probe_kafka


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("bootstrap", "servers"),
    [
        ("127.0.0.1:9093", [("127.0.0.1", 9093)]),
        ("kafka-0:19092, kafka-1", [("kafka-0", 19092), ("kafka-1", 9092)]),
        ("PLAINTEXT://broker:9094", [("broker", 9094)]),
        ("[::1]:9095,[::1]", [("::1", 9095), ("::1", 9092)]),
    ],
)
def test_kafka_servers_reads_every_entry_of_a_bootstrap_list(
    bootstrap: str, servers: list[tuple[str, int]]
) -> None:
    assert kafka_servers(bootstrap) == servers


async def test_probe_of_a_closed_port_says_connection_refused_at_once(
    capfd: pytest.CaptureFixture[str],
) -> None:
    (closed_port,) = free_ports(1)
    started = time.monotonic()
    with pytest.raises(ProbeFailed, match=r"^connection refused$"):
        await probe_kafka(f"{LOOPBACK}:{closed_port}")
    assert time.monotonic() - started < 0.5
    assert capfd.readouterr().err == ""


async def test_probe_of_a_server_that_speaks_no_kafka_gives_up_after_its_timeout_quietly(
    silent_listener: int, capfd: pytest.CaptureFixture[str]
) -> None:
    (closed_port,) = free_ports(1)
    started = time.monotonic()
    # One entry of the list accepting a connection is enough to try the protocol.
    with pytest.raises(ProbeFailed, match=r"^no Kafka metadata within 2 s: "):
        await probe_kafka(f"{LOOPBACK}:{closed_port},{LOOPBACK}:{silent_listener}")
    assert PROBE_TIMEOUT_S <= time.monotonic() - started < PROBE_TIMEOUT_S + 1.0
    assert capfd.readouterr().err == ""


async def test_topics_on_an_unreachable_broker_fail_with_a_stack_error_and_print_nothing(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kafka, "CONNECT_TIMEOUT_S", 0.5)
    (closed_port,) = free_ports(1)
    bootstrap = f"{LOOPBACK}:{closed_port}"
    with pytest.raises(StackError) as raised:
        await ensure_topics(bootstrap, partitions=1)
    assert raised.value.message == (
        f"cannot create Kafka topics at {bootstrap}: "
        "Failed to get metadata: Local: Broker transport failure"
    )
    # librdkafka's default is a stderr line per refused connection; none may reach `cift`'s output.
    assert capfd.readouterr().err == ""
