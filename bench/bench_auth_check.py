"""Throughput and latency of the gateway's `Authorization/Check` against a real auth process.

Starts the infrastructure with the `cift up` launcher (the PostgreSQL and Redis in
CIFT_DATABASE_URL / CIFT_REDIS_URL when set, embedded ones otherwise), then
`python -m services.auth` on a throwaway database, then for a JWT and for an API key:
a fixed-rate phase (open loop, default 1,000 checks/s, latency p50/p99) and a
saturation phase (closed loop, `--concurrency` callers, checks/s).

    python bench/bench_auth_check.py

The client runs on the same machine as the server, so figures include its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cift.extauthz.v3 import external_auth_pb2, external_auth_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency import cpu_seconds, fixed_rate, percentile, saturate
from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.stack.launcher import Stack, StackOptions

PASSWORD = "benchmark password 1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def infrastructure() -> AsyncIterator[tuple[str, str]]:
    """PostgreSQL and Redis as `cift up` finds them: configured when set, else embedded."""
    with tempfile.TemporaryDirectory() as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        info = await stack.start()
        try:
            yield info.database_url, info.redis_url
        finally:
            await stack.stop()


@contextlib.asynccontextmanager
async def auth_process(admin_dsn: str, redis_url: str) -> AsyncIterator[tuple[str, int]]:
    name = f"cift_auth_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    port = free_port()
    env = {
        **os.environ,
        "CIFT_DATABASE_URL": f"{admin_dsn.rpartition('/')[0]}/{name}",
        "CIFT_REDIS_URL": redis_url,
        "CIFT_GRPC_PORT": str(port),
        "CIFT_METRICS_PORT": "0",
        "CIFT_AUTH_BCRYPT_COST": "4",
        "CIFT_LOG_LEVEL": "WARNING",
        "CIFT_AUTH_API_KEY_PEPPER": "bench-pepper",
        "CIFT_AUTH_SIGNING_KEY_SECRET": "bench-secret",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.auth", env=env)
    address = f"127.0.0.1:{port}"
    try:
        await wait_serving(address)
        yield address, process.pid
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def wait_serving(address: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"auth at {address} did not become SERVING")


def check_request(header: str, value: str) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.method = "GET"
    request.attributes.request.http.path = "/v1/account"
    request.attributes.request.http.headers[header] = value
    return request


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="checks per second in the fixed-rate phase"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="callers in the saturation phase"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="fixed-rate runs per credential; medians reported"
    )
    args = parser.parse_args()
    async with (
        infrastructure() as (admin_dsn, redis_url),
        auth_process(admin_dsn, redis_url) as (address, pid),
        grpc.aio.insecure_channel(address) as channel,
    ):
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        await auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
        login = await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
        key = await auth.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="bench", scopes=["read", "trade"]),
            metadata=(("authorization", f"Bearer {login.access_token}"),),
        )
        check = external_auth_pb2_grpc.AuthorizationStub(channel)
        credentials = {
            "JWT (authorization: Bearer)": check_request(
                "authorization", f"Bearer {login.access_token}"
            ),
            "API key (x-api-key)": check_request("x-api-key", key.key),
        }
        rows = []
        for label, request in credentials.items():

            async def call(request: external_auth_pb2.CheckRequest = request) -> float:
                started = time.perf_counter()
                response = await check.Check(request)
                elapsed = time.perf_counter() - started
                if response.status.code != 0:
                    raise RuntimeError(f"check denied: {response.status.message}")
                return elapsed

            for _ in range(500):  # warm caches, connections and the JIT-less interpreter alike
                await call()
            runs = []
            for _ in range(args.repeat):
                cpu_before = cpu_seconds(pid)
                latencies = await fixed_rate(call, args.rate, args.duration)
                cpu_us = (cpu_seconds(pid) - cpu_before) / len(latencies) * 1e6
                runs.append((percentile(latencies, 0.5), percentile(latencies, 0.99), cpu_us))
            throughput = await saturate(call, args.concurrency, args.duration)
            p99s = sorted(run[1] * 1e3 for run in runs)
            rows.append(
                (
                    label,
                    statistics.median(run[0] * 1e3 for run in runs),
                    statistics.median(p99s),
                    f"{p99s[0]:.2f}-{p99s[-1]:.2f}",
                    statistics.median(run[2] for run in runs),
                    throughput,
                )
            )

    print("command: python bench/bench_auth_check.py " + " ".join(sys.argv[1:]))
    print(
        f"fixed rate: {args.rate:.0f} checks/s for {args.duration:.0f} s, {args.repeat} runs "
        f"(medians; the box is shared); saturation: {args.concurrency} callers"
    )
    header = (
        "credential",
        "p50 ms",
        "p99 ms",
        "p99 range ms",
        "server CPU us/check",
        "max checks/s",
    )
    print(
        f"{header[0]:<28} {header[1]:>7} {header[2]:>7} {header[3]:>13} {header[4]:>20} {header[5]:>13}"
    )
    for label, p50, p99, p99_range, cpu_us, throughput in rows:
        print(
            f"{label:<28} {p50:>7.3f} {p99:>7.3f} {p99_range:>13} {cpu_us:>20.0f} {throughput:>13.0f}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(main()))
