"""Risk pre-trade check latency (unary CheckOrder) and throughput (CheckOrders stream).

Run: python bench/bench_risk.py [--rate 1000] [--seconds 5] [--repeat 3] [--stream-checks 50000]

Starts the infrastructure with the same launcher as `cift up` (embedded PostgreSQL,
Redis and Kafka-protocol broker on free ports, thrown away afterwards), the risk
service as its own process (`python -m services.risk`), and in this process a
GetInstrument server for the instrument (risk caches it after the first call).
Identity travels as gateway headers (CIFT_TRUST_GATEWAY_IDENTITY=true), so no
auth service is involved. Every check does its full work: decode, instrument
cache, one Redis EVALSHA (unary) or one pipelined round trip per batch (stream),
all rules, encode.

- unary: an open-loop schedule of `--rate` checks per second for `--seconds`,
  each on its own task (latency includes queueing when the server falls behind),
  over 100 accounts, `--repeat` times; with the risk process's CPU per check.
  The client runs on uvloop, as the services (and auth's bench client) do.
- stream: one CheckOrders stream carrying `--stream-checks` checks as fast as
  flow control allows, sent 1, 10 and 100 checks per stream message;
  throughput is checks answered per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency import cpu_seconds, percentile
from cift.execution.v1 import orders_pb2
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.risk.v1 import risk_pb2, risk_pb2_grpc
from cift.stack.launcher import Stack, StackOptions

ACCOUNTS = [f"bench-{i:03d}" for i in range(100)]
ADMIN = (
    ("x-cift-user-id", "bench"),
    ("x-cift-account-id", "bench-000"),
    ("x-cift-scopes", "read trade admin"),
)


class OneInstrument(marketdata_pb2_grpc.MarketDataServiceServicer):
    async def GetInstrument(
        self, request: Any, context: Any
    ) -> marketdata_pb2.GetInstrumentResponse:
        return marketdata_pb2.GetInstrumentResponse(
            instrument=marketdata_pb2.Instrument(
                symbol=request.symbol,
                tick_size="0.01",
                lot_size="1",
                tradable=True,
                shortable=True,
                status=marketdata_pb2.INSTRUMENT_STATUS_ACTIVE,
            )
        )


def check(i: int) -> risk_pb2.CheckOrderRequest:
    return risk_pb2.CheckOrderRequest(
        request_id=str(i),
        account_id=ACCOUNTS[i % len(ACCOUNTS)],
        symbol="AAPL",
        side=orders_pb2.ORDER_SIDE_BUY,
        type=orders_pb2.ORDER_TYPE_LIMIT,
        time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
        qty="10",
        limit_price="100.00",
        buying_power="100000",
    )


async def wait_serving(address: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("risk did not become SERVING")


async def unary(stub: Any, rate: int, seconds: float) -> tuple[int, float, list[float], int]:
    latencies: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            await stub.CheckOrder(check(i), metadata=ADMIN)
            latencies.append((time.perf_counter() - started) * 1000)
        except grpc.aio.AioRpcError:
            failures += 1

    total = int(rate * seconds)
    tasks = []
    began = time.perf_counter()
    for i in range(total):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return total, time.perf_counter() - began, latencies, failures


async def stream(stub: Any, count: int, per_message: int) -> tuple[int, float]:
    async def requests() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        for start in range(0, count, per_message):
            batch = [check(i) for i in range(start, min(count, start + per_message))]
            if per_message == 1:
                yield risk_pb2.CheckOrdersRequest(check=batch[0])
            else:
                yield risk_pb2.CheckOrdersRequest(checks=batch)

    received = 0
    began = time.perf_counter()
    async for response in stub.CheckOrders(requests(), metadata=ADMIN):
        received += len(response.results) or 1
    return received, time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stream-checks", type=int, default=50_000)
    args = parser.parse_args()
    print(
        f"command: python bench/bench_risk.py --rate {args.rate} --seconds {args.seconds} "
        f"--repeat {args.repeat} --stream-checks {args.stream_checks}"
    )
    print(f"load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    marketdata = grpc.aio.server()
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(OneInstrument(), marketdata)
    md_port = marketdata.add_insecure_port("127.0.0.1:0")
    await marketdata.start()

    with tempfile.TemporaryDirectory() as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        info = await stack.start()
        grpc_port = _free_port()
        env = {
            **os.environ,
            **info.env,
            "CIFT_GRPC_PORT": str(grpc_port),
            "CIFT_METRICS_PORT": "0",
            "CIFT_MARKETDATA_ADDR": f"127.0.0.1:{md_port}",
            "CIFT_TRUST_GATEWAY_IDENTITY": "true",
            "CIFT_RISK_ORDERS_PER_SECOND": "100000",
            "CIFT_RISK_ORDER_BURST": "1000000",
            "CIFT_LOG_LEVEL": "WARNING",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.risk", env=env
        )
        address = f"127.0.0.1:{grpc_port}"
        try:
            await wait_serving(address)
            async with grpc.aio.insecure_channel(address) as channel:
                stub = risk_pb2_grpc.RiskServiceStub(channel)
                await unary(stub, 200, 1.0)  # warm up: instrument cache, script load, connections
                runs = []
                for _ in range(args.repeat):
                    cpu_before = cpu_seconds(process.pid)
                    total, elapsed, latencies, failures = await unary(stub, args.rate, args.seconds)
                    cpu_us = (cpu_seconds(process.pid) - cpu_before) / total * 1e6
                    runs.append((total, elapsed, latencies, failures, cpu_us))
                streamed = [
                    (per_message, *(await stream(stub, args.stream_checks, per_message)))
                    for per_message in (1, 10, 100)
                ]
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=30)
            await stack.stop()
    await marketdata.stop(0)

    print()
    print(
        f"{'benchmark':<34}{'checks':>9}{'checks/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'server CPU us/check':>21}"
    )
    for total, elapsed, latencies, failures, cpu_us in runs:
        print(
            f"{'CheckOrder unary @' + str(args.rate) + '/s':<34}{len(latencies):>9}"
            f"{len(latencies) / elapsed:>11.0f}{statistics.median(latencies):>9.2f}"
            f"{percentile(latencies, 0.99):>9.2f}{max(latencies):>9.2f}{cpu_us:>21.0f}"
        )
        if failures:
            print(f"  unary failures: {failures} of {total}")
    for per_message, received, stream_s in streamed:
        label = f"CheckOrders stream, {per_message}/message"
        print(f"{label:<34}{received:>9}{received / stream_s:>11.0f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
