"""Soak: the whole mesh under mixed load for a long time; memory must level off, logs stay clean.

Run: python bench/soak.py [--minutes 30] [--accounts 4] [--sample-s 10] [--pause-s 0.05]
     [--access-token-ttl-s 900] [--set CIFT_NAME=VALUE ...]

Starts the real `cift up` (embedded infrastructure, every service, the gateway) in
a fresh temporary home and runs the fault suite's load against the gateway: traders
on several accounts sending market orders that fill, resting limit buys and cancels
(tests/faults/load.py), renewing their access tokens through the refresh route half
way through each token's life, as a real client does. Every `--sample-s` it samples
the memory of each supervised process tree (PostgreSQL with all its backends) split
by kind (bench/memory.py): anonymous (heaps: where a leak shows), shared memory
(PostgreSQL's shared buffers) and file-backed; the three add up to the PSS.

The bound, stated before the run, per process and kind (bench/memory.verdicts):
anonymous and file-backed memory may grow by at most 20 % + 16 MiB between the
median of the second fifth of the samples (the first fifth is warm-up) and that of
the last fifth — a leak of a few kilobytes per order passes a short run and fails a
30-minute one. PostgreSQL's shared memory may not exceed the segment the server
reports (`shared_memory_size`: shared buffers, WAL buffers, lock tables), since
filling it is the buffer cache reaching its configured size; its anonymous memory is
judged per process (the services' pools open backends as the load needs them): a
backend may grow by 20 % + `work_mem`, what one sort or hash may take. The embedded broker
(Tansu) keeps every record in memory with no retention until `cift up` restarts it,
empty, past `CIFT_KAFKA_MEMORY_LIMIT_MIB` (once its consumers have read it): its
anonymous memory rises and falls, and its highest sample after the warm-up may not pass
that limit + 16 MiB (at the default 32 MiB a run of a few minutes sees restarts).
Market data grows until its stream rings are full
(`CIFT_MARKETDATA_STREAM_RING` items per kind, ~0.9 KiB each; at the simulator's
default rate the quote ring fills in ~14 min, the trade ring in ~42 min): the soak
reads the items they hold (`cift_marketdata_stream_ring_items`) at each sample, and
its anonymous memory may grow by 1 KiB per item they took on between the two medians
on top of the +20 % + 16 MiB; `--set CIFT_MARKETDATA_STREAM_RING=4096` shows in a
short run that it then levels off.
It also fails on any error line written to any log once the stack is up (JSON
`"level": "error"`, PostgreSQL ERROR/FATAL/PANIC, Envoy `[error]`/`[critical]`), on
any 5xx the clients saw, on any 401 (a token the load did not renew), and on books
that do not balance afterwards (tests/faults/books.py). Not run by CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.memory import Footprint, setting_mib, tree_footprint, verdicts
from cift.runtime.config import load as load_config
from cift.stack import control
from cift.stack.cli import READY_LINE
from cift.stack.launcher import StackInfo
from cift.stack.ports import PortPlan
from cift.stack.settings import StackConfig
from tests.cift_process import cift_up
from tests.faults.books import settled_problems, snapshot_problems
from tests.faults.load import Load

OPENING_CASH = Decimal("100000")
_NON_JSON_ERRORS = re.compile(r"\b(ERROR|FATAL|PANIC):|\[(error|critical)\]")


def log_sizes(logs_dir: Path) -> dict[str, int]:
    return {log.name: log.stat().st_size for log in logs_dir.glob("*.log")}


def error_lines(logs_dir: Path, skip: dict[str, int]) -> Counter[str]:
    """Error lines written to any log after `skip` (bytes per file: start-up), by message."""
    found: Counter[str] = Counter()
    for log in sorted(logs_dir.glob("*.log")):
        with log.open("rb") as stream:
            stream.seek(skip.get(log.name, 0))
            text = stream.read().decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("level") in ("error", "critical"):
                    found[f"{log.name}: {str(record.get('msg'))[:120]}"] += 1
            elif _NON_JSON_ERRORS.search(line):
                found[f"{log.name}: {line[:160]}"] += 1
    return found


async def postgres_memory_settings(url: str) -> tuple[float, float]:
    """The server's main shared memory segment and its `work_mem`, in MiB (PostgreSQL 15+)."""
    connection = await asyncpg.connect(url)
    try:
        segment = await connection.fetchval("SHOW shared_memory_size")
        work_mem = await connection.fetchval("SHOW work_mem")
    finally:
        await connection.close()
    return setting_mib(str(segment)), setting_mib(str(work_mem))


def memory_report(
    timed: dict[str, list[tuple[float, Footprint]]],
    minutes: float,
    postgres_settings: tuple[float, float],
    broker_limit_mib: float | None,
    ring_items: list[float],
) -> list[str]:
    """Print each process's memory at start and end and the verdict per kind; the failures."""
    failures = []
    print("\nmemory of each process tree at the first -> last sample (MiB; procs: tree size)")
    print("| process | procs | anon | shmem | file | PSS | RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, series in sorted(timed.items()):
        first, last = series[0][1], series[-1][1]
        print(
            f"| {name} | {first.processes} -> {last.processes} "
            + " ".join(
                f"| {getattr(first, kind):.1f} -> {getattr(last, kind):.1f}"
                for kind in ("anon", "shmem", "file", "pss", "rss")
            )
            + " |"
        )
    segment_mib, work_mem_mib = postgres_settings
    print(
        f"\nbounds (median of the second fifth -> of the last fifth, "
        f"{len(next(iter(timed.values())))} samples; PostgreSQL shared_memory_size "
        f"{segment_mib:g} MiB, work_mem {work_mem_mib:g} MiB)"
    )
    print("| process | kind | early median | late median | MiB/min | bound | rule | within |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for name, series in sorted(timed.items()):
        footprints = [fp for _, fp in series]
        if name == "postgres":
            found = verdicts(name, footprints, minutes, segment_mib, work_mem_mib)
        elif name == "kafka":
            found = verdicts(name, footprints, minutes, anon_cap_mib=broker_limit_mib)
        elif name == "marketdata" and ring_items:
            found = verdicts(name, footprints, minutes, held_items=ring_items)
        else:
            found = verdicts(name, footprints, minutes)
        for v in found:
            if v.kind == "shmem" and v.late == 0.0:
                continue  # no shared memory at all: nothing to say
            print(
                f"| {name} | {v.kind} | {v.early:.2f} | {v.late:.2f} | {v.per_minute:+.2f} "
                f"| {v.bound:.1f} | {v.rule} | {'yes' if v.within else 'NO'} |"
            )
            if not v.within:
                failures.append(
                    f"{name} {v.kind} memory grew from {v.early:.1f} to {v.late:.1f} MiB "
                    f"(bound {v.bound:.1f}, {v.rule})"
                )
    return failures


async def held_in_rings(metrics_url: str) -> float:
    """Items market data's stream rings hold now (`cift_marketdata_stream_ring_items`)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(metrics_url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "cift_marketdata_stream_ring_items"
        for sample in family.samples
    )


def p50_p99_ms(took: list[float]) -> tuple[float, float]:
    """Median and 99th percentile, in ms, of sorted durations in seconds (not empty)."""
    return took[len(took) // 2] * 1000, took[min(len(took) - 1, int(len(took) * 0.99))] * 1000


def windows_table(
    timings: list[tuple[float, float]],
    samples: dict[str, list[tuple[float, Footprint]]],
    started: float,
    window_s: float,
) -> list[str]:
    """Per window of the run: calls answered, their p50/p99, and each process's PSS."""
    names = sorted(samples)
    lines = [
        "| minutes | calls | p50 ms | p99 ms | " + " | ".join(names) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(names),
    ]
    count = int(max((t for t, _ in timings), default=started) - started) // int(window_s) + 1
    for index in range(count):
        low, high = started + index * window_s, started + (index + 1) * window_s
        took = sorted(d for t, d in timings if low <= t < high)
        if not took:
            continue
        p50, p99 = p50_p99_ms(took)
        memory = [
            next((f"{fp.pss:.0f}" for t, fp in reversed(samples[name]) if t < high), "-")
            for name in names
        ]
        lines.append(
            f"| {index * window_s / 60:g}-{(index + 1) * window_s / 60:g} | {len(took):,} "
            f"| {p50:.0f} | {p99:.0f} | " + " | ".join(memory) + " |"
        )
    return lines


async def soak(args: argparse.Namespace) -> int:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CIFT_")}
    environ.update(PortPlan.free().to_environ())
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cift-soak-") as tmp:
        home = Path(tmp) / "home"
        environ["CIFT_HOME"] = str(home)
        environ["CIFT_OPENING_CASH"] = str(OPENING_CASH)
        environ["CIFT_AUTH_ACCESS_TOKEN_TTL_S"] = str(args.access_token_ttl_s)
        environ.update(args.settings)
        async with cift_up(environ) as running:
            await running.read_until(READY_LINE, 180)
            following = asyncio.create_task(running.follow())
            start_up_logs = log_sizes(home / "logs")
            info = StackInfo.from_json((home / "stack.json").read_text())
            assert info.gateway_url is not None
            load = await asyncio.to_thread(Load, info.gateway_url, args.accounts, args.pause_s)
            postgres_settings = await postgres_memory_settings(info.database_url)
            timed: dict[str, list[tuple[float, Footprint]]] = defaultdict(list)
            ring_items: list[float] = []
            load.start()
            started = time.monotonic()
            end = started + args.minutes * 60
            try:
                while time.monotonic() < end:
                    for figures in await control.request(home, "status"):
                        pid = figures["pid"]
                        footprint = None if pid is None else tree_footprint(pid)
                        if footprint is not None:
                            timed[figures["name"]].append((time.monotonic(), footprint))
                    ring_items.append(await held_in_rings(info.metrics_urls["marketdata"]))
                    await asyncio.sleep(args.sample_s)
            finally:
                await asyncio.to_thread(load.stop)
            elapsed_s = time.monotonic() - started
            await asyncio.sleep(3)
            accounts = load.account_ids
            failures += await settled_problems(info.database_url, accounts)
            failures += await snapshot_problems(
                info.database_url, accounts, dict(load.ledger.confirmed), OPENING_CASH
            )
            restarts = {f["name"]: f["restarts"] for f in await control.request(home, "status")}
            errors = error_lines(home / "logs", start_up_logs)
            following.cancel()
    ledger = load.ledger
    print(
        f"{args.minutes:g} min, {args.accounts} accounts: {ledger.submitted:,} orders sent "
        f"({ledger.submitted / elapsed_s:,.1f}/s), {len(ledger.confirmed):,} confirmed; "
        f"HTTP {dict(sorted(ledger.statuses.items()))}; token renewals "
        f"{dict(ledger.renewals)}; restarts {restarts}"
    )
    if ledger.timings:
        p50, p99 = p50_p99_ms(sorted(d for _, d in ledger.timings))
        print(f"latency of every answered call over the run: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    limit_mib = load_config(StackConfig, environ).kafka_memory_limit_mib
    failures += memory_report(timed, args.minutes, postgres_settings, limit_mib or None, ring_items)
    print("\nover time (each window: calls answered, latency, PSS MiB at its end)")
    print("\n".join(windows_table(ledger.timings, timed, started, args.window_s)))
    failures += [f"log error x{count}: {line}" for line, count in errors.most_common(20)]
    failures += [f"{b.method} {b.path} answered {b.status}" for b in ledger.bad_answers[:20]]
    if ledger.statuses[401]:
        failures.append(f"{ledger.statuses[401]} calls refused with 401: a token not renewed")
    failures += [f"{name} restarted {count} times" for name, count in restarts.items() if count]
    print("\n" + ("\n".join(f"FAIL: {f}" for f in failures) if failures else "no failures"))
    return 1 if failures else 0


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("CIFT_"):
        raise argparse.ArgumentTypeError(f"expected CIFT_NAME=VALUE, not {text!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--pause-s", type=float, default=0.05, help="each trader's pause")
    parser.add_argument(
        "--access-token-ttl-s",
        type=float,
        default=900.0,
        help="auth's access token lifetime (shorter: more renewals in a short run)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        type=setting,
        action="append",
        default=[],
        metavar="CIFT_NAME=VALUE",
        help="a setting for the stack (repeatable), e.g. CIFT_MARKETDATA_STREAM_RING=8192",
    )
    parser.add_argument("--window-s", type=float, default=300.0, help="over-time table's step")
    args = parser.parse_args()
    print("command: python " + " ".join(sys.argv))
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
