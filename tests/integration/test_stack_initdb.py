"""A new cluster beside a busy gRPC process: the test session's `infra` is made so.

The launcher makes the embedded PostgreSQL's cluster with initdb, as an unprivileged
user when run as root. Run with `subprocess.run(user=…)`, that fork()s, and the
launcher's gRPC threads (a test session's channels and servers) make the child fail:
4 of 10 initdb runs ended with no output beside four busy health-check callers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cift.stack.postgres import prepare_data_dir

pytestmark = pytest.mark.integration


async def test_initdb_succeeds_while_grpc_calls_run_in_the_same_process(tmp_path: Path) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(
        health.aio.HealthServicer(),  # type: ignore[attr-defined]
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    calls = 0

    async def call_without_pause() -> None:
        nonlocal calls
        while True:
            await stub.Check(health_pb2.HealthCheckRequest())
            calls += 1

    callers = [asyncio.create_task(call_without_pause()) for _ in range(4)]
    try:
        for run in range(8):
            await asyncio.to_thread(prepare_data_dir, tmp_path / f"cluster-{run}")
            assert (tmp_path / f"cluster-{run}" / "PG_VERSION").exists()
        assert calls > 0  # the gRPC threads were busy all along
    finally:
        for caller in callers:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await channel.close(None)
        await server.stop(None)
