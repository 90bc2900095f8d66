"""A service process's life on the shared runtime: health, metrics, drain, clear failures."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).with_name("sample_service.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(address: str, service: str = "") -> str:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        except grpc.RpcError as error:
            return f"error:{error.code().name}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def _wait_for(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


class Sample:
    def __init__(self, env: dict[str, str]) -> None:
        self.grpc_port = _free_port()
        self.metrics_port = _free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.env = {
            **os.environ,
            **env,
            "CIFT_GRPC_PORT": str(self.grpc_port),
            "CIFT_METRICS_PORT": str(self.metrics_port),
            "CIFT_LOG_FORMAT": "text",
        }
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        self.process = subprocess.Popen(
            [sys.executable, str(SAMPLE)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self.process

    def exit_after_health(self, status: str, within_s: float) -> tuple[int, str]:
        """Start it, see its health reach `status`, then its exit: (status code, stderr)."""
        process = self.start()
        try:
            _wait_for(lambda: _health(self.address) == status, within_s)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        return process.returncode, stderr


@pytest.fixture
def sample(infra: Any) -> Iterator[Sample]:
    service = Sample(dict(infra.env))
    yield service
    if service.process is not None and service.process.poll() is None:
        service.process.kill()
        service.process.wait()


def test_health_serving_metrics_and_graceful_drain(sample: Sample) -> None:
    process = sample.start()
    _wait_for(lambda: _health(sample.address) == "SERVING", 30)
    assert _health(sample.address, "sample.Sample") == "SERVING"

    async def slow_call_during_sigterm() -> bytes:
        async with grpc.aio.insecure_channel(sample.address) as channel:
            call = channel.unary_unary("/sample.Sample/Slow", None, None)(b"1.5")
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            return await call  # type: ignore[no-any-return]

    assert asyncio.run(slow_call_during_sigterm()) == b"done"
    assert process.wait(timeout=15) == 0


def test_a_crashed_background_task_stops_the_process_for_its_supervisor(infra: Any) -> None:
    # A process that answers health checks while its relay or consumer is dead would do
    # no work unnoticed; exiting non-zero gets it restarted by cift up or Kubernetes.
    sample = Sample({**infra.env, "SAMPLE_CRASH_AFTER_S": "1"})
    returncode, stderr = sample.exit_after_health("SERVING", 30)
    assert returncode == 1
    assert "background task doomed crashed; stopping the service" in stderr
    assert "the sample's background task failed" in stderr


def test_metrics_endpoint_reports_rpcs_by_code(sample: Sample) -> None:
    sample.start()
    _wait_for(lambda: _health(sample.address) == "SERVING", 30)
    with grpc.insecure_channel(sample.address) as channel:
        assert channel.unary_unary("/sample.Sample/Slow", None, None)(b"0", timeout=5) == b"done"
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{sample.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert 'cift_rpc_requests_total{code="OK",method="Slow",service="sample"} 1.0' in body
    assert "cift_rpc_latency_seconds_bucket" in body


def test_unreachable_database_keeps_health_not_serving_then_exits_with_one_clear_line(
    infra: Any,
) -> None:
    dead_port = _free_port()
    sample = Sample(
        {
            **infra.env,
            "CIFT_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{dead_port}/cift",
            "CIFT_DEPENDENCY_TIMEOUT_S": "4",
        }
    )
    returncode, stderr = sample.exit_after_health("NOT_SERVING", 10)
    assert returncode != 0
    assert "PostgreSQL did not answer" in stderr
    assert "Traceback" not in stderr


def test_port_already_taken_is_one_clear_line(infra: Any) -> None:
    sample = Sample(dict(infra.env))
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        blocker.bind(("127.0.0.1", sample.grpc_port))
        blocker.listen()
        process = sample.start()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert f"cannot listen on 127.0.0.1:{sample.grpc_port}" in stderr
    assert "Traceback" not in stderr


def test_a_burst_of_calls_beyond_grpcs_default_pending_limit_is_served(sample: Sample) -> None:
    """grpc.aio accepts calls one at a time; more than 1,000 waiting must not be cancelled."""
    sample.start()
    _wait_for(lambda: _health(sample.address) == "SERVING", 30)

    async def burst(count: int) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        async with grpc.aio.insecure_channel(sample.address) as channel:
            slow = channel.unary_unary("/sample.Sample/Slow", None, None)

            async def one() -> None:
                try:
                    outcome = "done" if await slow(b"0.2", timeout=60) == b"done" else "wrong"
                except grpc.aio.AioRpcError as error:
                    outcome = error.code().name
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

            await asyncio.gather(*(one() for _ in range(count)))
        return outcomes

    assert asyncio.run(burst(2500)) == {"done": 2500}
