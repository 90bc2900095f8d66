"""`make bench`: run every benchmark on this machine, then write what the README cites.

Run: python bench/run_all.py [--only NAME ...] [--plots-only]

The gRPC floor runs first: every latency figure stands on it. Each bench's output goes
to the terminal and to bench/results/<bench>.txt; the figures each bench records
(bench/results/<bench>.json, see bench/figures.py) become bench/results/SUMMARY.md —
date, machine load before each bench, the floor of this run, and every table — and the
plots bench/results/*.png. Nothing under bench/results/ is committed: a README figure
is copied from a SUMMARY.md of the machine at hand, with its date.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import RESULTS_DIR, load, machine

BENCH_DIR = Path(__file__).resolve().parent
FIRST = "bench_grpc_floor"


# In-process benches first (minutes in all), then those that start a stack: on a busy
# machine the quick figures are in hand even if a stack bench has to be stopped.
IN_PROCESS = (
    "bench_marketdata_indicators",
    "bench_marketdata_bars",
    "bench_execution_fill_engine",
    "bench_execution_brackets",
)


def bench_names() -> list[str]:
    names = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    first = [n for n in (FIRST, *IN_PROCESS) if n in names]
    return [*first, *(n for n in names if n not in first)]


def run_one(name: str, index: int, total: int, timeout_s: float) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    print(f"\n[{index}/{total}] python bench/{name}.py  (load {load_before:.2f})", flush=True)
    started = time.monotonic()
    with (RESULTS_DIR / f"{name}.txt").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / f"{name}.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=BENCH_DIR.parent,
            start_new_session=True,  # its own group, so a stop reaches what it started
        )
        # A bench that hangs (a stack that never comes up) is stopped, not waited for.
        stopper = threading.Timer(timeout_s, os.killpg, (process.pid, signal.SIGKILL))
        stopper.start()
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = process.wait()
        if not stopper.is_alive():
            print(f"[{index}/{total}] {name}: stopped after {timeout_s:.0f} s", flush=True)
        stopper.cancel()
    elapsed_s = time.monotonic() - started
    print(f"[{index}/{total}] {name}: exit {code} after {elapsed_s:.0f} s", flush=True)
    return {"name": name, "date": date, "load": load_before, "seconds": elapsed_s, "exit": code}


def floor_line() -> str:
    floor = load(FIRST)
    if floor is None:
        return "gRPC floor: not measured in this run"
    bare = floor["figures"].get("bare", {})
    return (
        f"gRPC floor of this run (empty grpc.aio call at {floor['figures'].get('rate_per_s', 0):.0f}/s): "
        f"p50 {bare.get('p50_ms', float('nan')):.2f} ms, p99 {bare.get('p99_ms', float('nan')):.2f} ms, "
        f"{bare.get('calls_per_s', 0):,.0f} calls/s at most"
    )


def floor_cell() -> str:
    floor = load(FIRST)
    if floor is None:
        return "not measured"
    bare = floor["figures"].get("bare", {})
    return f"{bare.get('p50_ms', float('nan')):.2f} / {bare.get('p99_ms', float('nan')):.2f} ms"


def runs_path() -> Path:
    return RESULTS_DIR / "runs.json"


def remember(run: dict[str, Any]) -> None:
    """Keep each bench's latest run, so `--only` redoes one bench without losing the
    others' rows from the same day."""
    path = runs_path()
    known = json.loads(path.read_text()) if path.is_file() else {}
    known[run["name"]] = run
    path.write_text(json.dumps(known, indent=2) + "\n")


def recalled() -> list[dict[str, Any]]:
    path = runs_path()
    known: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}
    order = bench_names()
    return sorted(
        known.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else 99
    )


def write_summary(runs: list[dict[str, Any]]) -> Path:
    lines = [
        "# Benchmarks on this machine",
        "",
        f"Run with `make bench` (`python bench/run_all.py`); machine: {machine()}.",
        "",
        floor_line(),
        "",
        "Each row: when the bench ran, its command, the 1-minute load average as it started,",
        "and the gRPC floor measured first in this same run (p50 / p99 of an empty call),",
        "so each figure can be read against the machine's state at the time.",
        "",
        "| bench | date (UTC) | command | load at start | gRPC floor p50 / p99 | seconds | exit |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    floor = floor_cell()
    for run in runs:
        recorded = load(run["name"])
        command = recorded["command"] if recorded else f"python bench/{run['name']}.py"
        lines.append(
            f"| {run['name']} | {run['date']} | `{command}` | {run['load']:.2f} | {floor} "
            f"| {run['seconds']:.0f} | {run['exit']} |"
        )
    for run in runs:
        output = RESULTS_DIR / f"{run['name']}.txt"
        lines += ["", f"## {run['name']}", "", "```", output.read_text().rstrip(), "```"]
    path = RESULTS_DIR / "SUMMARY.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_plots() -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    indicators = load("bench_marketdata_indicators")
    if indicators:
        rows = {k: v for k, v in indicators["figures"]["indicators"].items() if "x_talib" in v}
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(list(rows), [v["x_talib"] for v in rows.values()], color="#3b82f6")
        ax.axhline(1.0, color="#ef4444", linestyle="--", label="TA-Lib (same run)")
        ax.set_ylabel("our time / TA-Lib's")
        ax.set_title(f"Indicators on {indicators['figures']['points']:,} points (lower is faster)")
        ax.legend()
        written.append(_save(fig, "indicators_vs_talib.png"))

    bars = load("bench_marketdata_bars")
    if bars:
        methods = bars["figures"]["methods"]
        kinds = sorted({key.split(" / ")[0] for key in methods})
        names = sorted({key.split(" / ")[1] for key in methods})
        fig, ax = plt.subplots(figsize=(7, 3.5))
        width = 0.8 / len(names)
        for offset, name in enumerate(names):
            xs = [i + offset * width for i in range(len(kinds))]
            ax.bar(xs, [methods[f"{k} / {name}"]["median_s"] for k in kinds], width, label=name)
        ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(kinds))], kinds)
        ax.set_yscale("log")
        ax.set_ylabel("seconds (median, log scale)")
        ax.set_xlabel("symbols given as")
        ax.set_title(f"1-minute bars from {bars['figures']['ticks']:,} trades")
        ax.legend()
        written.append(_save(fig, "bars_vs_pandas_polars.png"))

    distributions: dict[str, list[float]] = {}
    for path in sorted(RESULTS_DIR.glob("bench_*.json")):
        recorded = load(path.stem) or {}
        for label, figures in (recorded.get("figures") or {}).items():
            if isinstance(figures, dict) and figures.get("latency_samples_ms"):
                distributions[f"{path.stem.removeprefix('bench_')}: {label}"] = figures[
                    "latency_samples_ms"
                ]
    if distributions:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for label, samples in distributions.items():
            ordered = sorted(x for x in samples if math.isfinite(x))
            ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log scale)")
        ax.set_ylabel("fraction of calls")
        ax.set_title("Latency at a fixed rate (cumulative)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        written.append(_save(fig, "latency_at_fixed_rate.png"))
    return written


def _save(fig: Any, name: str) -> Path:
    path = RESULTS_DIR / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="bench names (e.g. bench_risk) to run")
    parser.add_argument("--plots-only", action="store_true", help="redraw from saved figures")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before a bench is stopped"
    )
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    runs: list[dict[str, Any]] = []
    if not args.plots_only:
        names = [n for n in bench_names() if not args.only or n in args.only]
        if not args.only:
            # A full run cites only itself: no figure from an earlier run survives.
            for stale in [*RESULTS_DIR.glob("bench_*.*"), runs_path()]:
                stale.unlink(missing_ok=True)
        for index, name in enumerate(names, start=1):
            runs.append(run_one(name, index, len(names), args.timeout))
            remember(runs[-1])
        print(f"\nwrote {write_summary(recalled()).relative_to(BENCH_DIR.parent)}")
    for path in write_plots():
        print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    failed = [run["name"] for run in runs if run["exit"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)} (their output is in bench/results/)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
