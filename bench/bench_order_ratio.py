"""SubmitOrder through the gateway as a ratio to a trivial call, and latency at a fixed rate:
figures that hold on any machine, measured for two code trees in one run (A/B).

    python bench/bench_order_ratio.py [--base build/base] [--rounds 2] [--duration 8]
                                      [--clients 32] [--rates 200,40]

For each tree (this one, and `--base`: a checkout of another commit, e.g.
`git archive main | tar -x -C build/base`) and each round, alternating A, B, A, B so
a busier neighbour weighs on both alike, a child process starts the whole mesh from
that tree the way `cift up` does (embedded PostgreSQL, Redis, broker, the services
and Envoy, on free ports) and measures through the gateway:

- orders/s: `POST /v1/orders` (market orders of 1 AAPL, buy then sell on each
  account, so every order fills) from `--clients` callers in a closed loop;
- clock/s: `GET /v1/clock` (authenticated, answered by market data with no database
  read) the same way; the ratio orders/s ÷ clock/s is the figure to compare;
- CPU per order: the CPU time each process of the mesh (PostgreSQL with its backends,
  the services, Envoy, the broker) spent during the closed loop of orders, divided by
  the orders answered; less swayed by a busy neighbour than throughput is;
- p50/p99 at fixed rates (`--rates`, orders/s): an open loop sends each order at its
  scheduled time whatever the answers do, so queueing shows in the latency. A low
  rate that is slower than a higher one means something waits when it is quiet.
  Each rate's latencies (of this tree's last round) are recorded with the figures
  (bench/figures.py), so `make bench` draws their distribution beside the gRPC floor's.
- ms per stage at each fixed rate: the mean time a SubmitOrder spent reading its
  context, at the risk service, writing and booking, from execution's
  `cift_execution_submit_stage_seconds` (services/execution/app/entry_stages.py; a
  tree without it shows none), and in execution's handler in all
  (`cift_rpc_latency_seconds`); the rest of the end-to-end time is the gateway, the
  network and the load generator. Where the wait is when quiet, and which stage
  queues under load.

The load generator shares the machine with the mesh; the ratio cancels most of that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

TREE = Path(os.environ.get("CIFT_BENCH_TREE", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(TREE))

from bench.bench_gateway import (  # noqa: E402
    Call,
    HttpConnection,
    OrderFlow,
    Result,
    Trader,
    rest_orders,
    run_closed_loop,
    sign_in,
)
from bench.figures import record  # noqa: E402
from bench.histograms import histogram_totals  # noqa: E402
from cift.stack.launcher import Stack, StackOptions  # noqa: E402

# The figures' prefix for one process's CPU time per order.
CPU = "cpu_ms_per_order_"
# The prefix of a fixed rate's mean time per SubmitOrder stage, and the stages in order.
STAGE = "stage_ms_"
STAGE_METRIC = "cift_execution_submit_stage_seconds"
RPC_METRIC = "cift_rpc_latency_seconds"
STAGES = ("context", "risk", "write", "book", "handler")
# Most latencies kept per rate for the plot: evenly spaced over the sorted sample, so
# the distribution's shape (and its tail) survives while the JSON stays small.
MAX_SAMPLES = 5000


def clock_calls(connections: list[HttpConnection], traders: list[Trader]) -> Callable[[int], Call]:
    def make(client: int) -> Call:
        connection = connections[client]
        headers = {"authorization": f"Bearer {traders[client % len(traders)].token}"}

        async def call(_client: int, _n: int) -> str | None:
            status, answer = await connection.request("GET", "/v1/clock", headers)
            return None if status == 200 else f"{status} {answer[:200]!r}"

        return call

    return make


async def fixed_rate(
    gateway: str, flow: OrderFlow, rate: float, duration_s: float, connections: int = 16
) -> Result:
    """Send one order every 1/rate s (open loop) over a pool of keep-alive connections."""
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await HttpConnection.open(gateway))
    result = Result(f"{rate:g}/s", "fixed", connections, duration_s)
    interval = 1.0 / rate
    total = int(rate * duration_s)
    start = time.perf_counter()
    pending: list[asyncio.Task[None]] = []

    async def send(n: int, scheduled: float) -> None:
        connection = await pool.get()
        try:
            headers = {"authorization": f"Bearer {flow.trader(n % flow.clients, n).token}"}
            status, answer = await connection.request(
                "POST", "/v1/orders", headers, flow.rest_body(n)
            )
        finally:
            pool.put_nowait(connection)
        # From the scheduled time: a send delayed by a busy generator counts as waiting.
        elapsed_ms = (time.perf_counter() - scheduled) * 1000
        if status == 200:
            result.latencies_ms.append(elapsed_ms)
        else:
            result.errors += 1
            result.first_error = result.first_error or f"{status} {answer[:200]!r}"

    for n in range(total):
        scheduled = start + n * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(send(n, scheduled)))
    await asyncio.gather(*pending)
    result.duration_s = time.perf_counter() - start
    while not pool.empty():
        await pool.get_nowait().close()
    return result


def cpu_s(stack: Stack) -> dict[str, float]:
    """CPU seconds each process of the stack has used so far, with its descendants'."""
    used: dict[str, float] = {}
    for component in stack.components:
        if component.child is None:
            continue
        try:
            root = psutil.Process(component.child.pid)
            times = [p.cpu_times() for p in (root, *root.children(recursive=True))]
        except psutil.NoSuchProcess:
            continue
        # children_*: descendants already reaped (a PostgreSQL backend that ended).
        used[component.name] = sum(
            t.user + t.system + t.children_user + t.children_system for t in times
        )
    return used


def stage_totals(metrics_url: str) -> dict[str, tuple[float, float]]:
    """(seconds, orders) so far per SubmitOrder stage and in all, from execution's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        text = answer.read().decode()

    def stage(family: str, labels: Mapping[str, str]) -> str | None:
        if family == STAGE_METRIC:
            return labels["stage"]
        if family == RPC_METRIC and labels.get("method") == "SubmitOrder":
            return "handler"  # the whole call inside execution, stages and the rest
        return None

    return histogram_totals(text, stage)


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean ms per order in each stage between two readings of `stage_totals`."""
    means: dict[str, float] = {}
    for stage, (spent, count) in after.items():
        spent_before, count_before = before.get(stage, (0.0, 0.0))
        if count > count_before:
            means[stage] = (spent - spent_before) * 1000 / (count - count_before)
    return means


def thinned(latencies_ms: list[float]) -> list[float]:
    """At most MAX_SAMPLES of the sorted latencies, evenly spaced (the slowest kept)."""
    ordered = sorted(latencies_ms)
    if len(ordered) <= MAX_SAMPLES:
        return ordered
    step = (len(ordered) - 1) / (MAX_SAMPLES - 1)
    return [ordered[round(i * step)] for i in range(MAX_SAMPLES)]


async def measure(args: argparse.Namespace) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="cift-bench-ratio-"))
    environ = {**os.environ, "CIFT_AUTH_BCRYPT_COST": "4", "CIFT_LOG_LEVEL": "WARNING"}
    stack = Stack(StackOptions(home=home, free_ports=True), environ=environ)
    info = await stack.start()
    figures: dict[str, float] = {}
    samples: dict[str, list[float]] = {}
    try:
        assert info.gateway_url is not None
        gateway = info.gateway_url
        clients = args.clients
        traders = await sign_in(gateway, 3 * clients)
        http = [await HttpConnection.open(gateway) for _ in range(clients)]
        market = OrderFlow("market", traders, clients)
        d = args.duration
        for name, make in (
            ("orders", rest_orders(http, market)),
            ("clock", clock_calls(http, traders)),
        ):
            await run_closed_loop(name, "warm", clients, min(1.0, d), make)
            before = cpu_s(stack)
            done = await run_closed_loop(name, "ratio", clients, d, make)
            figures[f"{name}_per_s"] = done.throughput
            figures[f"{name}_errors"] = done.errors
            if name == "orders":
                after = cpu_s(stack)
                answered = max(1, len(done.latencies_ms))
                for process, seconds in after.items():
                    spent = seconds - before.get(process, 0.0)
                    figures[CPU + process] = spent * 1000 / answered
        for connection in http:
            await connection.close()
        for rate in args.rates:
            # Market orders alternate buy and sell per account: risk allows 50/s each.
            flow = OrderFlow("market", traders, len(traders))
            stages_before = stage_totals(info.metrics_urls["execution"])
            done = await fixed_rate(gateway, flow, rate, d)
            stages = stage_means(stages_before, stage_totals(info.metrics_urls["execution"]))
            for stage, ms in stages.items():
                figures[f"{STAGE}{stage}_at_{rate:g}"] = ms
            figures[f"mean_ms_at_{rate:g}"] = statistics.fmean(done.latencies_ms or [0.0])
            figures[f"p50_ms_at_{rate:g}"] = done.percentile(0.50)
            figures[f"p99_ms_at_{rate:g}"] = done.percentile(0.99)
            figures[f"errors_at_{rate:g}"] = done.errors
            samples[f"{rate:g}"] = thinned(done.latencies_ms)
    finally:
        await stack.stop()
    figures["ratio"] = figures["orders_per_s"] / figures["clock_per_s"]
    return {**figures, "latency_samples_ms": samples}


def run_tree(
    tree: Path, args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(figures, latencies in ms per rate) of one child measuring `tree`."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--duration",
        str(args.duration),
        "--clients",
        str(args.clients),
        "--rates",
        ",".join(f"{r:g}" for r in args.rates),
    ]
    env = {**os.environ, "CIFT_BENCH_TREE": str(tree), "PYTHONPATH": str(tree)}
    answer = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if answer.returncode != 0:
        raise SystemExit(f"{tree}: exit {answer.returncode}\n{answer.stderr[-3000:]}")
    answered = json.loads(answer.stdout.strip().splitlines()[-1])
    samples: dict[str, list[float]] = answered.pop("latency_samples_ms", {})
    return answered, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="another tree to measure alongside (A/B)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--rates", type=lambda text: [float(r) for r in text.split(",")], default=[200.0, 40.0]
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(measure(args))), flush=True)
        return 0
    print("$ python " + " ".join(["bench/bench_order_ratio.py", *(argv or sys.argv[1:])]))
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    trees = [("this", TREE)] + ([("base", args.base.resolve())] if args.base else [])
    rows = []
    latencies: dict[str, dict[str, list[float]]] = {}
    for round_no in range(1, args.rounds + 1):
        for label, tree in trees:
            figures, latencies[label] = run_tree(tree, args)
            rows.append((round_no, label, figures))
            cells = [
                f"{k}={v:.3g}"
                for k, v in figures.items()
                if ("errors" not in k or v) and not k.startswith((CPU, STAGE, "mean_ms"))
            ]
            print(f"round {round_no} {label}: " + " ".join(cells), flush=True)
    rates = "".join(f" | p50/p99 ms at {r:g}/s" for r in args.rates)
    print(f"\n| round | tree | orders/s | clock/s | ratio{rates} |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(args.rates))
    for round_no, label, f in rows:
        latency = "".join(
            f" | {f[f'p50_ms_at_{r:g}']:.1f} / {f[f'p99_ms_at_{r:g}']:.1f}" for r in args.rates
        )
        print(
            f"| {round_no} | {label} | {f['orders_per_s']:.0f} | {f['clock_per_s']:.0f} "
            f"| {f['ratio']:.3f}{latency} |"
        )
    processes = sorted(
        {k.removeprefix(CPU) for _, _, f in rows for k in f if k.startswith(CPU)},
        key=lambda process: -max(f.get(CPU + process, 0.0) for _, _, f in rows),
    )
    print("\nCPU ms per order in the closed loop, by process:\n")
    print("| round | tree | all | " + " | ".join(processes) + " |")
    print("|---|---|---:|" + "---:|" * len(processes))
    for round_no, label, f in rows:
        spent = [f.get(CPU + process, 0.0) for process in processes]
        print(
            f"| {round_no} | {label} | {sum(spent):.2f} | "
            + " | ".join(f"{ms:.2f}" for ms in spent)
            + " |"
        )
    stages = [
        s
        for s in STAGES
        if any(f"{STAGE}{s}_at_{r:g}" in f for _, _, f in rows for r in args.rates)
    ]
    if stages:
        print("\nMean ms per SubmitOrder stage at each fixed rate (execution's own timers):\n")
        print("| round | tree | rate | " + " | ".join(stages) + " | end to end |")
        print("|---|---|---:|" + "---:|" * (len(stages) + 1))
        for round_no, label, f in rows:
            for r in args.rates:
                means = " | ".join(
                    f"{f.get(f'{STAGE}{s}_at_{r:g}', float('nan')):.2f}" for s in stages
                )
                mean = f.get(f"mean_ms_at_{r:g}", float("nan"))
                print(f"| {round_no} | {label} | {r:g}/s | {means} | {mean:.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    recorded: dict[str, object] = {}
    for label, per_rate in latencies.items():
        last = [f for _, name, f in rows if name == label][-1]
        for rate, values in per_rate.items():
            recorded[f"{label}: orders at {rate}/s"] = {
                "p50_ms": last[f"p50_ms_at_{rate}"],
                "p99_ms": last[f"p99_ms_at_{rate}"],
                "errors": last[f"errors_at_{rate}"],
                "latency_samples_ms": values,
            }
    recorded["rounds"] = [{"round": n, "tree": name, **f} for n, name, f in rows]
    record("bench_order_ratio", recorded)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
