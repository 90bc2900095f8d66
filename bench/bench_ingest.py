"""Tick ingest draining a backlog: ticks/s with 1, 2 and 4 processes, against a raw-Kafka floor.

Run: python bench/bench_ingest.py [--ticks 300000] [--processes 1,2,4] [--partitions 4]
     [--tree branch=. --tree main=/work/main] [--rounds 1]

Starts embedded PostgreSQL, Redis and the Kafka-protocol broker with the project's
launcher. For each round, tree and process count: a child publishes --ticks
simulated ticks (the feed's own publish path) to a fresh topic; then N processes of
`python -m services.marketdata ingest` (run from that tree, so two trees compare
A/B in the same run on the same broker and database) drain it into PostgreSQL
(COPY), Redis (latest quotes) and bars. Ticks/s counts from the first to the last
row written. Each run starts from an empty schema built by that tree's own
migrations (`python -m services.marketdata migrate`), so each tree has its own
indexes. The floor is a child that consumes the same topic with the bare
librdkafka client (records fetched and their value taken, nothing decoded): no
ingest can beat it in one process, so ingest ÷ floor says how much of the Kafka
client's own rate the ingest keeps. CPU µs/tick is the ingest processes' user+system
time over the ticks; PG µs/tick is PostgreSQL's (every server process, backends,
WAL writer and checkpointer alike) over the same window, so the two say which side
of the COPY a figure waits on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench import children
from bench.figures import record as record_figures
from bench.latency import cpu_seconds
from cift.runtime.config import load, to_environ
from cift.runtime.kafka import EventProducer, ensure_topics
from cift.runtime.server import tune_gc
from cift.stack.launcher import Stack, StackOptions
from cift.stack.ports import free_ports
from services.marketdata.config import MarketDataConfig
from services.marketdata.events import publish_ticks
from services.marketdata.feed import FeedRunner, NoTicks
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]


async def child_publish(bootstrap: str, topic: str, count: int) -> None:
    tune_gc()
    producer = EventProducer(bootstrap, "marketdata-bench")
    await producer.start()
    simulator = Simulator(
        default_universe(), seed=1, rate_per_symbol=1000.0, start_ns=time.time_ns()
    )
    runner = FeedRunner(NoTicks(), None, lambda _: None, interval_s=0.0)
    sent = 0
    while sent < count:
        batch = runner.stamp(simulator.next_events(min(5000, count - sent)))
        await publish_ticks(producer, batch, topic)
        sent += len(batch)
    await producer.flush()
    await producer.stop()
    print(json.dumps({"published": sent}))


def child_floor(bootstrap: str, topic: str, count: int) -> None:
    """Consume `count` records with the bare client: the most one process can fetch."""
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"floor-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started = None
    while seen < count:
        records = consumer.consume(5000, 0.2)
        if records and started is None:
            started = time.perf_counter()
            first = len(records)
        for record in records:
            if record.error() is None:
                record.value()
                seen += 1
    assert started is not None
    elapsed = time.perf_counter() - started
    consumer.close()
    print(json.dumps({"floor_per_s": (seen - first) / elapsed}))


def run_child(*args: str) -> dict[str, Any]:
    return children.run_child(__file__, *args, timeout_s=900)


def postgres_cpu_seconds(data_dir: Path) -> dict[str, float]:
    """User+system CPU of the PostgreSQL server so far, by process role: the client
    backends, each background process (WAL writer, checkpointer, autovacuum...), and
    the postmaster with the children it has already reaped."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    roles: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # exited meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            role, used = "postmaster", sum(int(f) for f in fields[11:15])
        elif ppid == postmaster:
            role = title.removeprefix("postgres: ")
            if "(" in role or "[local]" in role:
                role = "backends"
            elif role.startswith("autovacuum worker"):
                role = "autovacuum worker"
            used = int(fields[11]) + int(fields[12])
        else:
            continue
        roles[role] = roles.get(role, 0.0) + used / tick
    return roles


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per role between two `postgres_cpu_seconds` readings (a worker that
    came and went shows under the postmaster, which reaped it)."""
    return {role: after[role] - before.get(role, 0.0) for role in after}


async def count_ticks(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM marketdata.ticks"))


def start_ingest(config: MarketDataConfig, tree: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """One `python -m services.marketdata ingest` process running the code of `tree`."""
    env = tree_environ(config, tree)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.marketdata", "ingest"],
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def drain(
    info: Any,
    config: MarketDataConfig,
    tree: Path,
    processes: int,
    ticks: int,
    logs: Path,
    pg_data: Path,
) -> tuple[float, float, float]:
    """(ticks/s, CPU µs per tick of the ingest processes, of PostgreSQL) draining the topic."""
    children = [
        start_ingest(config, tree, logs / f"ingest-{tree.name}-{processes}-{n}.log")
        for n in range(processes)
    ]
    conn = await asyncpg.connect(info.database_url)
    try:
        first: tuple[float, int] | None = None
        cpu_at_first = 0.0
        pg_at_first: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while True:
            count = await count_ticks(conn)
            if count and first is None:
                first = (time.perf_counter(), count)
                cpu_at_first = sum(cpu_seconds(c.pid) for c in children)
                pg_at_first = postgres_cpu_seconds(pg_data)
            if count >= ticks:
                last = count
                break
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                raise RuntimeError(f"ingest did not finish; see {logs}")
            await asyncio.sleep(0.05)
        done = time.perf_counter()
        cpu = sum(cpu_seconds(c.pid) for c in children) - cpu_at_first
        pg_cpu = cpu_spent(pg_at_first, postgres_cpu_seconds(pg_data))
    finally:
        await conn.close()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    assert first is not None
    # Measured from the first poll that saw a stored tick to the one that saw them all.
    drained = last - first[1]
    if drained <= 0:
        raise SystemExit(
            f"all {ticks:,} ticks were stored between two polls of the table, too fast to "
            "time; run with more ticks (--ticks 200000 or more)"
        )
    roles = ", ".join(
        f"{role} {seconds / drained * 1e6:.2f}"
        for role, seconds in sorted(pg_cpu.items(), key=lambda kv: -kv[1])
        if seconds > 0
    )
    print(f"# PostgreSQL CPU µs/tick by process: {roles}", flush=True)
    return drained / (done - first[0]), cpu / drained * 1e6, sum(pg_cpu.values()) / drained * 1e6


def tree_environ(config: MarketDataConfig, tree: Path) -> dict[str, str]:
    """The environment of a service process running the code of `tree` on `config`."""
    (port,) = free_ports(1)
    env = {**os.environ, **to_environ(replace(config, grpc_port=port, metrics_port=0))}
    env["PYTHONPATH"] = str(tree)
    return env


async def reset_schema(database_url: str, config: MarketDataConfig, tree: Path) -> None:
    """Drop the marketdata schema and apply `tree`'s own migrations: each tree ingests
    into the tables and indexes its code was written for, from the same empty state."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS marketdata CASCADE")
    finally:
        await conn.close()
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.marketdata", "migrate"],
        cwd=tree,
        env=tree_environ(config, tree),
        check=True,
        capture_output=True,
    )


async def main(args: argparse.Namespace) -> None:
    trees: list[tuple[str, Path]] = args.trees
    counts = [int(n) for n in args.processes.split(",")]
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cift-ingest-bench-") as home:
        stack = Stack(
            StackOptions(home=Path(home), with_services=False, free_ports=True, durable=False)
        )
        info = await stack.start()
        logs = Path(home) / "logs"
        try:
            await stack.migrate()
            results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
            floors: list[float] = []
            for round_ in range(args.rounds):
                for processes in counts:
                    for name, tree in trees:
                        topic = f"bench.ingest.{name}.{processes}.{round_}.{time.time_ns()}"
                        await ensure_topics(
                            info.kafka_bootstrap, [topic], partitions=args.partitions
                        )
                        await asyncio.to_thread(
                            run_child, "publish", info.kafka_bootstrap, topic, str(args.ticks)
                        )
                        if processes == counts[0] and name == trees[0][0]:
                            measured = await asyncio.to_thread(
                                run_child, "floor", info.kafka_bootstrap, topic, str(args.ticks)
                            )
                            floors.append(measured["floor_per_s"])
                        config = load(
                            MarketDataConfig,
                            {},
                            service_name="marketdata",
                            grpc_host="127.0.0.1",
                            grpc_port=0,
                            metrics_port=0,
                            database_url=info.database_url,
                            redis_url=info.redis_url,
                            kafka_bootstrap=info.kafka_bootstrap,
                            log_level="WARNING",
                            marketdata_feed="none",
                            marketdata_ticks_topic=topic,
                            marketdata_ingest_group=f"bench-{topic}",
                        )
                        await reset_schema(info.database_url, config, tree)
                        rate, cpu, pg_cpu = await drain(
                            info, config, tree, processes, args.ticks, logs, Path(home) / "postgres"
                        )
                        results.setdefault((name, processes), []).append((rate, cpu, pg_cpu))
                        print(
                            f"# round {round_} {name} x{processes}: {rate:,.0f} ticks/s, "
                            f"{cpu:.1f} µs CPU/tick ingest, {pg_cpu:.1f} PostgreSQL "
                            f"(load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
        finally:
            await stack.stop()
    floor = sorted(floors)[len(floors) // 2]
    print(
        f"# python bench/bench_ingest.py --ticks {args.ticks} --processes {args.processes} "
        f"--partitions {args.partitions} --rounds {args.rounds} "
        + " ".join(f"--tree {t}" for t in args.tree)
    )
    print(
        f"# load average at the start: {load_at_start:.1f}, at the end: "
        f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} shared cores)"
    )
    print(
        f"# floor: bare librdkafka consume of the same records, 1 process: {floor:,.0f} records/s"
    )
    print(
        f"{'tree':<10}{'processes':>10}{'ticks/s (median)':>18}{'x floor':>9}"
        f"{'ingest CPU µs/tick':>20}{'PG CPU µs/tick':>16}"
    )
    figures: dict[str, Any] = {
        "floor_records_per_s": floor,
        "ticks": args.ticks,
        "load_at_start": load_at_start,
    }
    for (name, processes), runs in results.items():
        rate = sorted(r for r, _, _ in runs)[len(runs) // 2]
        cpu = sorted(c for _, c, _ in runs)[len(runs) // 2]
        pg_cpu = sorted(p for _, _, p in runs)[len(runs) // 2]
        print(
            f"{name:<10}{processes:>10}{rate:>18,.0f}{rate / floor:>9.2f}{cpu:>20.1f}{pg_cpu:>16.1f}"
        )
        figures[f"{name}_x{processes}"] = {
            "ticks_per_s": rate,
            "cpu_us_per_tick": cpu,
            "postgres_cpu_us_per_tick": pg_cpu,
        }
    record_figures("bench_ingest", figures)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, *rest = sys.argv[2:]
        if kind == "publish":
            asyncio.run(child_publish(rest[0], rest[1], int(rest[2])))
        else:
            child_floor(rest[0], rest[1], int(rest[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=300_000)
    parser.add_argument(
        "--processes", default="1,2,4", help="ingest process counts, comma-separated"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--tree", action="append", default=None, help="name=path of a source tree (repeatable)"
    )
    parsed = parser.parse_args()
    parsed.tree = parsed.tree or [f"branch={ROOT}"]
    parsed.trees = [
        (name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in parsed.tree)
    ]
    asyncio.run(main(parsed))
