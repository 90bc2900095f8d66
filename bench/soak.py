"""Soak: the whole mesh under mixed load for a long time; memory must level off, logs stay clean.

Run: python bench/soak.py [--minutes 30] [--accounts 4] [--sample-s 10] [--pause-s 0.05]
     [--access-token-ttl-s 900] [--set CIFT_NAME=VALUE ...]

Starts the real `cift up` (embedded infrastructure, every service, the gateway) in
a fresh temporary home and runs the fault suite's load against the gateway: traders
on several accounts sending market orders that fill, resting limit buys and cancels
(tests/faults/load.py), renewing their access tokens through the refresh route half
way through each token's life, as a real client does. Every `--sample-s` it samples
the memory of each supervised process — the proportional set size (PSS) of its whole
process tree, so PostgreSQL's shared buffers are counted once across its backends.

The bound: for each process, the median of the last fifth of the samples may exceed
the median of the second fifth (the first fifth is warm-up) by at most 20 % + 16 MiB.
A leak of a few kilobytes per order passes a short run and fails a 30-minute one.
The embedded broker (Tansu) keeps every record in memory with no retention, so its
memory grows with what is published (mostly ticks): it fails the bound on any long
run, and the table's MiB/min says by how much. Market data grows until its stream
rings are full (`CIFT_MARKETDATA_STREAM_RING` items per kind, ~0.9 KiB each; at the
simulator's default rate the quote ring fills in ~14 min, the trade ring in ~42 min):
`--set CIFT_MARKETDATA_STREAM_RING=4096` shows in a short run that it then levels off.
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
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cift.stack import control
from cift.stack.cli import READY_LINE
from cift.stack.launcher import StackInfo
from cift.stack.ports import PortPlan
from tests.cift_process import cift_up
from tests.faults.books import settled_problems, snapshot_problems
from tests.faults.load import Load

OPENING_CASH = Decimal("100000")
GROWTH_RATIO = 0.20
GROWTH_SLACK_MIB = 16.0
_NON_JSON_ERRORS = re.compile(r"\b(ERROR|FATAL|PANIC):|\[(error|critical)\]")


def tree_pss_mib(pid: int) -> float | None:
    """PSS of a process and all its descendants, in MiB (None once it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / (1 << 20)


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


def growth_verdicts(
    samples: dict[str, list[float]], minutes: float
) -> list[tuple[str, float, float, float, float, bool]]:
    """(process, early median, late median, MiB per minute, bound, within) per process."""
    verdicts = []
    for name, series in samples.items():
        fifth = max(1, len(series) // 5)
        early = statistics.median(series[fifth : 2 * fifth] or series)
        late = statistics.median(series[-fifth:])
        # The medians are three fifths of the run apart.
        per_minute = (late - early) / (minutes * 3 / 5)
        bound = early * (1 + GROWTH_RATIO) + GROWTH_SLACK_MIB
        verdicts.append((name, early, late, per_minute, bound, late <= bound))
    return verdicts


def p50_p99_ms(took: list[float]) -> tuple[float, float]:
    """Median and 99th percentile, in ms, of sorted durations in seconds (not empty)."""
    return took[len(took) // 2] * 1000, took[min(len(took) - 1, int(len(took) * 0.99))] * 1000


def windows_table(
    timings: list[tuple[float, float]],
    samples: dict[str, list[tuple[float, float]]],
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
            next((f"{mib:.0f}" for t, mib in reversed(samples[name]) if t < high), "-")
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
            samples: dict[str, list[float]] = defaultdict(list)
            timed: dict[str, list[tuple[float, float]]] = defaultdict(list)
            load.start()
            started = time.monotonic()
            end = started + args.minutes * 60
            try:
                while time.monotonic() < end:
                    for figures in await control.request(home, "status"):
                        pss = None if figures["pid"] is None else tree_pss_mib(figures["pid"])
                        if pss is not None:
                            samples[figures["name"]].append(pss)
                            timed[figures["name"]].append((time.monotonic(), pss))
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
    print(f"\nmemory (PSS of each process tree, MiB; {len(next(iter(samples.values())))} samples)")
    print("| process | early median | late median | MiB/min | bound | within |")
    print("|---|---:|---:|---:|---:|---|")
    for name, early, late, per_minute, bound, within in growth_verdicts(samples, args.minutes):
        print(
            f"| {name} | {early:.1f} | {late:.1f} | {per_minute:+.2f} | {bound:.1f} "
            f"| {'yes' if within else 'NO'} |"
        )
        if not within:
            failures.append(f"{name} grew from {early:.1f} to {late:.1f} MiB (bound {bound:.1f})")
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
