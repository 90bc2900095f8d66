"""Market data service end to end: ingest throughput, GetLatestQuote latency, stream fan-out.

Run: python bench/bench_marketdata_service.py [--ticks 200000] [--subscribers 100] [--seconds 10]
     [--ingest-processes 1] [--partitions 3]

Starts embedded PostgreSQL, Redis and the Kafka-protocol broker with the project's
launcher, runs the marketdata service in this process, and drives it from child
processes (so load generators do not share the service's core):
1. ingest: a child publishes --ticks simulated ticks as fast as it can; the service
   ingests them (PostgreSQL COPY, bars, Redis latest quotes); ticks/s is measured
   from the first to the last tick written.
2. GetLatestQuote: sequential unary calls from a child; p50/p99 per call.
3. fan-out: the service's own simulator feed runs at --rate ticks/s per symbol and a
   child opens --subscribers StreamQuotes streams (all symbols); delivered quotes/s,
   stream messages/s and feed-to-client latency (client clock minus quote timestamp).
Calls authenticate with a fixed token (JWT verification is auth's and not measured).

With `--ingest-processes N` the ingest measurements add N-1 processes running
`python -m services.marketdata ingest` (members of the same consumer group, as
`cift up` starts them), over topics of `--partitions` partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import children
from bench.latency import percentile
from cift.marketdata.v1 import marketdata_pb2 as md
from cift.marketdata.v1 import marketdata_pb2_grpc
from cift.runtime.config import load, to_environ
from cift.runtime.errors import Unauthenticated
from cift.runtime.identity import Identity
from cift.runtime.kafka import EventProducer, ensure_topics
from cift.runtime.server import ServiceRuntime, tune_gc
from cift.stack.launcher import Stack, StackOptions
from cift.stack.ports import free_ports
from cift.stack.processes import Child, spawn
from cift.stack.services import wait_all_serving
from services.marketdata.__main__ import SPEC
from services.marketdata.config import MarketDataConfig
from services.marketdata.events import publish_ticks
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator

TOKEN = "bench-token"
METADATA = (("authorization", f"Bearer {TOKEN}"),)
NS = 1_000_000_000


class FixedTokenVerifier:
    async def verify_token(self, token: str) -> Identity:
        if token != TOKEN:
            raise Unauthenticated("Unknown bench token.")
        return Identity("bench", "bench", frozenset({"read"}), token)

    async def verify_api_key(self, api_key: str) -> Identity:
        raise Unauthenticated("No API keys here.")


async def child_publish(bootstrap: str, topic: str, count: int) -> None:
    # The feed runs inside a service process, whose runtime tunes the GC after startup.
    tune_gc()
    producer = EventProducer(bootstrap, "marketdata-bench")
    await producer.start()
    simulator = Simulator(
        default_universe(), seed=1, rate_per_symbol=1000.0, start_ns=time.time_ns()
    )
    runner = FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.0)
    started = time.perf_counter()
    sent = 0
    while sent < count:
        batch = runner.stamp(simulator.next_events(min(5000, count - sent)))
        await publish_ticks(producer, batch, topic)
        sent += len(batch)
    await producer.flush()
    await producer.stop()
    print(json.dumps({"published": sent, "publish_s": time.perf_counter() - started}))


async def child_latest_quote(address: str, calls: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        symbols = list(default_universe().symbols)
        for i in range(200):  # warm-up
            await stub.GetLatestQuote(
                md.GetLatestQuoteRequest(symbol=symbols[i % 50]), metadata=METADATA
            )
        latencies = []
        started = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter()
            await stub.GetLatestQuote(
                md.GetLatestQuoteRequest(symbol=symbols[i % 50]), metadata=METADATA
            )
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "calls": calls,
                "calls_per_s": calls / elapsed,
                "p50_ms": percentile(latencies, 0.50) * 1e3,
                "p99_ms": percentile(latencies, 0.99) * 1e3,
                "max_ms": max(latencies) * 1e3,
            }
        )
    )


async def child_fanout(address: str, subscribers: int, seconds: float) -> None:
    quotes = 0
    messages = 0
    lags: list[float] = []

    async def consume(stub: Any, deadline: float) -> None:
        nonlocal quotes, messages
        call = stub.StreamQuotes(md.StreamQuotesRequest(), metadata=METADATA)
        try:
            async for message in call:
                now = time.time_ns()
                messages += 1
                quotes += len(message.quotes)
                if message.quotes:
                    last = message.quotes[-1].timestamp
                    lags.append((now - (last.seconds * NS + last.nanos)) / 1e6)
                if time.monotonic() > deadline:
                    break
        finally:
            call.cancel()

    # Several channels (HTTP/2 connections), as many independent clients would have.
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, subscribers // 25))]
    stubs = [marketdata_pb2_grpc.MarketDataServiceStub(c) for c in channels]
    warm_deadline = time.monotonic() + 2.0
    await asyncio.gather(
        *(consume(stubs[i % len(stubs)], warm_deadline) for i in range(subscribers))
    )
    quotes = messages = 0
    lags.clear()
    started = time.monotonic()
    await asyncio.gather(
        *(consume(stubs[i % len(stubs)], started + seconds) for i in range(subscribers))
    )
    elapsed = time.monotonic() - started
    for channel in channels:
        await channel.close(None)
    print(
        json.dumps(
            {
                "subscribers": subscribers,
                "quotes_per_s": quotes / elapsed,
                "messages_per_s": messages / elapsed,
                "lag_p50_ms": percentile(lags, 0.5),
                "lag_p99_ms": percentile(lags, 0.99),
            }
        )
    )


def run_child(*args: str) -> dict[str, Any]:
    return children.run_child(__file__, *args, timeout_s=600)


# --- the service -----------------------------------------------------------------------


def service_config(info: Any, topic: str, port: int, **overrides: Any) -> MarketDataConfig:
    return load(
        MarketDataConfig,
        {},
        service_name="marketdata",
        grpc_host="127.0.0.1",
        grpc_port=port,
        metrics_port=0,
        database_url=info.database_url,
        redis_url=info.redis_url,
        kafka_bootstrap=info.kafka_bootstrap,
        drain_timeout_s=1.0,
        log_level="WARNING",
        marketdata_ticks_topic=topic,
        marketdata_ingest_group=f"bench-{topic}",
        **overrides,
    )


async def start_service(
    info: Any, topic: str, port: int, **overrides: Any
) -> ServiceRuntime[MarketDataConfig]:
    config = service_config(info, topic, port, **overrides)
    runtime = ServiceRuntime(
        replace(SPEC, verifier_factory=lambda ctx: FixedTokenVerifier()), config
    )
    await runtime.start()
    return runtime


async def start_ingest_processes(
    service: MarketDataConfig, count: int, logs_dir: Path
) -> list[Child]:
    """`count` more members of the service's ingest group, each its own process."""
    children = []
    addresses = {}
    for n in range(count):
        (port,) = free_ports(1)
        config = replace(service, grpc_port=port, metrics_port=0)
        name = f"ingest-{n + 1}"
        children.append(
            spawn(
                name,
                [sys.executable, "-m", "services.marketdata", "ingest"],
                log_path=logs_dir / f"{name}.log",
                env={**os.environ, **to_environ(config)},
            )
        )
        addresses[name] = f"127.0.0.1:{port}"
    await wait_all_serving(children, addresses, 60.0)
    return children


async def stop_processes(children: list[Child]) -> None:
    await asyncio.gather(*(child.stop() for child in children))


async def ingested(runtime: ServiceRuntime[MarketDataConfig]) -> int:
    async with runtime.context.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM ticks"))


async def measure_ingest(
    runtime: ServiceRuntime[MarketDataConfig],
    info: Any,
    topic: str,
    ticks: int,
    *,
    concurrent: bool,
    before: int,
) -> tuple[float, float]:
    """(publish ticks/s or 0, ingest ticks/s from the first to the last tick written).

    `before` is the table's count before any process of this run could ingest.
    """
    publisher = None
    if concurrent:
        publisher = asyncio.create_task(
            asyncio.to_thread(run_child, "publish", info.kafka_bootstrap, topic, str(ticks))
        )
    first_seen: tuple[float, int] | None = None
    while True:
        count = await ingested(runtime) - before
        if count and first_seen is None:
            first_seen = (time.perf_counter(), count)
        if count >= ticks:
            break
        await asyncio.sleep(0.05)
    done = time.perf_counter()
    assert first_seen is not None
    publish_rate = 0.0
    if publisher is not None:
        published = await publisher
        publish_rate = published["published"] / published["publish_s"]
    return publish_rate, (ticks - first_seen[1]) / (done - first_seen[0])


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cift-md-bench-") as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        info = await stack.start()
        try:
            await run_benchmarks(info, args)
        finally:
            await stack.stop()


async def run_benchmarks(info: Any, args: argparse.Namespace) -> None:
    address_port = 50990
    topic = f"bench.ticks.{int(time.time())}"
    await ensure_topics(info.kafka_bootstrap, [topic], partitions=args.partitions)
    extra = args.ingest_processes - 1

    # 1a. feed and ingest running at once: the end-to-end rate is the slower of the two.
    runtime = await start_service(info, topic, address_port, marketdata_feed="none")
    logs_dir = Path(info.home) / "logs"
    workers = await start_ingest_processes(runtime.config, extra, logs_dir)
    live_publish, live_ingest = await measure_ingest(
        runtime, info, topic, args.ticks, concurrent=True, before=await ingested(runtime)
    )
    await stop_processes(workers)
    before_backlog = await ingested(runtime)
    await runtime.drain()
    # 1b. the ingest alone: the ticks wait in the topic, then a new consumer group drains them.
    backlog_topic = topic + ".backlog"
    await ensure_topics(info.kafka_bootstrap, [backlog_topic], partitions=args.partitions)
    await asyncio.to_thread(
        run_child, "publish", info.kafka_bootstrap, backlog_topic, str(args.ticks)
    )
    # Every member starts at once, so the group's first assignment already spreads
    # the partitions (the broker holds a new group's first join for a few seconds).
    runtime, workers = await asyncio.gather(
        start_service(info, backlog_topic, address_port, marketdata_feed="none"),
        start_ingest_processes(
            service_config(info, backlog_topic, address_port, marketdata_feed="none"),
            extra,
            logs_dir,
        ),
    )
    _, backlog_ingest = await measure_ingest(
        runtime, info, backlog_topic, args.ticks, concurrent=False, before=before_backlog
    )
    await stop_processes(workers)

    # 2. GetLatestQuote latency against the ingested quotes.
    latest = await asyncio.to_thread(
        run_child, "latest", f"127.0.0.1:{address_port}", str(args.calls)
    )
    await runtime.drain()

    # 3. fan-out with the service's own simulator feed.
    fan_topic = topic + ".fanout"
    await ensure_topics(info.kafka_bootstrap, [fan_topic], partitions=3)
    runtime = await start_service(
        info,
        fan_topic,
        address_port + 1,
        marketdata_feed="simulator",
        marketdata_rate=args.rate,
        marketdata_max_streams=max(1000, args.subscribers * 2),
    )
    fanout = await asyncio.to_thread(
        run_child,
        "fanout",
        f"127.0.0.1:{address_port + 1}",
        str(args.subscribers),
        str(args.seconds),
    )
    await runtime.drain()

    print(
        "# python bench/bench_marketdata_service.py "
        f"--ticks {args.ticks} --calls {args.calls} --subscribers {args.subscribers} "
        f"--rate {args.rate} --seconds {args.seconds} "
        f"--ingest-processes {args.ingest_processes} --partitions {args.partitions}"
    )
    print("# 2 shared cores; service, broker, PostgreSQL, Redis and load generators on one machine")
    print(f"{'measure':<46}{'value':>14}")
    print(f"{'feed publish to Kafka (child process), ticks/s':<46}{live_publish:>14,.0f}")
    print(f"{'ingest while feeding (end to end), ticks/s':<46}{live_ingest:>14,.0f}")
    print(f"{'ingest alone from a backlog, ticks/s':<46}{backlog_ingest:>14,.0f}")
    print(f"{'GetLatestQuote sequential calls/s':<46}{latest['calls_per_s']:>14,.0f}")
    print(f"{'GetLatestQuote p50 ms':<46}{latest['p50_ms']:>14.3f}")
    print(f"{'GetLatestQuote p99 ms':<46}{latest['p99_ms']:>14.3f}")
    feed_rate = args.rate * len(default_universe())
    print(f"{'fan-out feed rate, ticks/s (~75% quotes)':<46}{feed_rate:>14,.0f}")
    print(f"{'fan-out subscribers':<46}{fanout['subscribers']:>14}")
    print(f"{'fan-out delivered quotes/s (all subscribers)':<46}{fanout['quotes_per_s']:>14,.0f}")
    print(f"{'fan-out stream messages/s':<46}{fanout['messages_per_s']:>14,.0f}")
    print(f"{'fan-out feed-to-client latency p50 ms':<46}{fanout['lag_p50_ms']:>14.1f}")
    print(f"{'fan-out feed-to-client latency p99 ms':<46}{fanout['lag_p99_ms']:>14.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, *rest = sys.argv[2:]
        if kind == "publish":
            asyncio.run(child_publish(rest[0], rest[1], int(rest[2])))
        elif kind == "latest":
            asyncio.run(child_latest_quote(rest[0], int(rest[1])))
        else:
            asyncio.run(child_fanout(rest[0], int(rest[1]), float(rest[2])))
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="fan-out feed ticks/s per symbol")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--ingest-processes", type=int, default=1, help="processes in the ingest group"
    )
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the topics")
    asyncio.run(main(parser.parse_args()))
