"""The floor under every latency target: an empty grpc.aio unary call on this machine.

Run: python bench/bench_grpc_floor.py [--rate 1000 --duration 5 --repeat 5 --concurrency 16]

Auth's Check (p99 < 2 ms at 1,000/s) and risk's CheckOrder (p99 < 3 ms) are
grpc.aio unary calls with a few microseconds of the service's own work on top.
This bench measures what such a call costs with no work at all, the same way
those benches measure theirs (a uvloop client in this process, open loop at a
fixed rate, the server in its own uvloop process on the same cores), so a
service's figure can be read against the machine it ran on:

- `bare`: the stock `grpc.health.v1.Health/Check` servicer, no interceptor;
- `runtime interceptor`: the same servicer behind the runtime's
  `ServiceInterceptor` (trace context, identity guard, error mapping, metrics),
  which every CIFT service runs.

It reports p50/p99/max latency per run, the server's CPU per call, and the most
calls per second `--concurrency` callers get (closed loop).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import record
from bench.latency import TimedCall, cpu_seconds, fixed_rate, percentile, saturate
from cift.runtime.interceptors import ServiceInterceptor


async def serve(port: int, with_interceptor: bool) -> None:
    interceptors = (
        [ServiceInterceptor("floor", {}, lambda: None, trust_gateway=True)]
        if with_interceptor
        else []
    )
    server = grpc.aio.server(interceptors=interceptors)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def timed_check(stub: health_pb2_grpc.HealthStub) -> TimedCall:
    request = health_pb2.HealthCheckRequest()

    async def call() -> float:
        started = time.perf_counter()
        try:
            await stub.Check(request)
        except grpc.aio.AioRpcError:
            # On a starved machine a call can fail (the connection's pings time out):
            # it counts as infinitely slow, so it shows in p99 and max, not as a crash.
            return math.inf
        return time.perf_counter() - started

    return call


async def measure(
    args: argparse.Namespace, with_interceptor: bool, figures: dict[str, object]
) -> list[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    flags = ["--interceptor"] if with_interceptor else []
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(port), *flags
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.channel_ready()
            call = timed_check(health_pb2_grpc.HealthStub(channel))
            for _ in range(500):
                await call()
            rows = []
            label = "runtime interceptor" if with_interceptor else "bare"
            p50s, p99s, samples = [], [], []
            for run in range(1, args.repeat + 1):
                cpu_before = cpu_seconds(server.pid)
                latencies = [s * 1e3 for s in await fixed_rate(call, args.rate, args.duration)]
                cpu_us = (cpu_seconds(server.pid) - cpu_before) / len(latencies) * 1e6
                p50s.append(statistics.median(latencies))
                p99s.append(percentile(latencies, 0.99))
                samples.extend(latencies)
                rows.append(
                    f"| {'runtime interceptor' if with_interceptor else 'bare'} | {run} "
                    f"| {statistics.median(latencies):.2f} | {percentile(latencies, 0.99):.2f} "
                    f"| {max(latencies):.2f} | {cpu_us:.0f} |"
                )
            peak = await saturate(call, args.concurrency, args.duration)
            rows.append(
                f"| ↳ most calls/s with {args.concurrency} callers: {peak:,.0f} | | | | | |"
            )
            figures[label] = {
                "p50_ms": statistics.median(p50s),
                "p99_ms": statistics.median(p99s),
                "calls_per_s": peak,
                "latency_samples_ms": samples[:: max(1, len(samples) // 5000)],
            }
            return rows
    finally:
        server.kill()
        await server.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--interceptor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.serve, args.interceptor)
        return
    print(
        f"command: python bench/bench_grpc_floor.py --rate {args.rate:.0f} "
        f"--duration {args.duration:.0f} --repeat {args.repeat} --concurrency {args.concurrency}"
    )
    print(f"load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"| server | run at {args.rate:.0f}/s | p50 ms | p99 ms | max ms | server CPU µs/call |")
    print("|---|---|---:|---:|---:|---:|")
    figures: dict[str, object] = {"rate_per_s": args.rate}
    for with_interceptor in (False, True):
        for row in await measure(args, with_interceptor, figures):
            print(row)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    record("bench_grpc_floor", figures)


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
