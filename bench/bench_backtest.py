"""Backtest engines against their peers, timed in the same run on the same synthetic bars.

Run: python bench/bench_backtest.py [--bars 1000000] [--rounds 3] [--memory-bars 10000000]
    [--grid-bars 1000000] [--only vector|event] [--before DIR]

- vector engine vs vectorbt: sma_cross 10/30 (long/short reversal, next open, whole
  shares, no commission) on `--bars` one-minute bars. "engine" times targets →
  positions → equity and trades (our `simulate` on the SMA signals, vectorbt's
  `Portfolio.from_signals` on the same signals, both given them); "run_backtest"
  adds bar checks, the SMAs and every stat. Before timing, both final equities
  are checked equal to the cent.
- event engine vs backtesting.py: the same strategy, ours through the live pre-trade
  checks (reservation + risk rules), the paper fill engine and the ledger, theirs its
  SmaCross with exclusive orders. Trade counts printed side by side (equity may
  differ by the cent rounding of each commission); no order may be refused.
- peak memory (RSS) of a vector and of an event run_backtest on `--memory-bars` bars,
  each in a fresh process;
- a 100-point sma_cross grid (fast 5..50 x slow 60..150) on `--grid-bars` bars.
- with `--before DIR` (a directory holding an earlier `cift/`, e.g. `git archive main
  cift | tar -x -C DIR`), the event engine of that code too, in a child process per
  round between ours and backtesting.py's: before/after and both against the peer in
  one run; its trades and final equity must equal ours.
Rounds are interleaved so a noisy neighbour slows all alike; medians are reported.
`--only` times one engine against its peer and skips the rest (memory, grid).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# backtesting.py draws a progress bar per run; the table is what this bench prints.
os.environ.setdefault("TQDM_DISABLE", "1")

from bench.figures import machine, record
from cift.backtest import builtin, run_backtest, split_bars
from cift.backtest.sweep import sweep
from cift.backtest.synthetic import random_walk_bars
from cift.backtest.vector import simulate

PARAMS = {"fast": 10, "slow": 30}
# No commission: at 0.2% a minute-bar reversal strategy spends its cash within days,
# after which nothing trades and there is nothing left to time.
CASH, COMMISSION = 10_000.0, 0.0


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def timed_cpu(function: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds: on a shared machine the CPU time is what the code itself cost."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def vectorbt_run(bars: Any, targets: np.ndarray) -> Any:
    import vectorbt as vbt

    # A target decided at close i trades at open i + 1.
    long_entries = np.r_[False, targets[:-1] > 0]
    short_entries = np.r_[False, targets[:-1] < 0]
    return vbt.Portfolio.from_signals(
        close=bars.close,
        entries=long_entries,
        short_entries=short_entries,
        price=bars.open,
        fees=COMMISSION,
        init_cash=CASH,
        size=np.inf,
        size_granularity=1,
        upon_opposite_entry="reverse",
    )


def backtesting_py_run(frame: pl.DataFrame) -> Any:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):  # type: ignore[misc]
        fast = PARAMS["fast"]
        slow = PARAMS["slow"]

        def init(self) -> None:
            self.sma_fast = self.I(SMA, self.data.Close, self.fast)
            self.sma_slow = self.I(SMA, self.data.Close, self.slow)

        def next(self) -> None:
            if crossover(self.sma_fast, self.sma_slow):
                self.buy()
            elif crossover(self.sma_slow, self.sma_fast):
                self.sell()

    data = frame.to_pandas().set_index("timestamp")
    data.columns = ["Open", "High", "Low", "Close", "Volume"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, SmaCross, cash=CASH, commission=COMMISSION, exclusive_orders=True)
        return bt.run()


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def bench_vector(frame: pl.DataFrame, rounds: int) -> dict[str, Any]:
    bars = split_bars(frame)[0]
    strategy = builtin("sma_cross")
    params = strategy.resolve(PARAMS)
    targets = strategy.targets(bars, params)
    ours = simulate(bars, targets, CASH, COMMISSION)
    theirs = vectorbt_run(bars, targets)
    assert round(float(ours.equity[-1]), 2) == round(float(theirs.final_value()), 2), (
        ours.equity[-1],
        theirs.final_value(),
    )
    samples: dict[str, list[float]] = {"ours_engine": [], "ours_run": [], "vectorbt": []}
    for _ in range(rounds):
        samples["ours_engine"].append(
            timed(lambda: simulate(bars, strategy.targets(bars, params), CASH, COMMISSION))
        )
        samples["ours_run"].append(
            timed(lambda: run_backtest(frame, "sma_cross", PARAMS, CASH, COMMISSION))
        )
        samples["vectorbt"].append(timed(lambda: vectorbt_run(bars, targets)))
    figures = {k: median(v) for k, v in samples.items()}
    figures["trades"] = ours.trades.height
    figures["final_equity"] = float(ours.equity[-1])
    return figures


# The event engine of an earlier `cift/` (PYTHONPATH), timed as `bench_event` times ours.
BEFORE_CHILD = """
import sys, time
import cift
from cift.backtest import run_backtest
from cift.backtest.synthetic import random_walk_bars
frame = random_walk_bars(int(sys.argv[1]))
args = ("sma_cross", {"fast": 10, "slow": 30}, float(sys.argv[2]), float(sys.argv[3]))
run_backtest(frame.head(2000), *args, engine="event")
wall, cpu = time.perf_counter(), time.process_time()
result = run_backtest(frame, *args, engine="event")
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(cift.__file__, wall, cpu, result.stats["trades"], result.stats["final_equity"])
"""


def before_run(before: Path, n: int) -> tuple[float, float, int, float]:
    """(wall, cpu, trades, final equity) of one event run of the code in `before`."""
    # Run from `before`: `-c` puts the working directory first on the path.
    out = subprocess.run(
        [sys.executable, "-c", BEFORE_CHILD, str(n), str(CASH), str(COMMISSION)],
        capture_output=True,
        text=True,
        check=True,
        cwd=before,
        env={**os.environ, "PYTHONPATH": str(before)},
    ).stdout.split()
    imported = Path(out[-5]).resolve()
    assert imported.is_relative_to(before.resolve()), f"the child imported {imported}"
    return float(out[-4]), float(out[-3]), int(out[-2]), float(out[-1])


def bench_event(frame: pl.DataFrame, rounds: int, before: Path | None = None) -> dict[str, Any]:
    ours = run_backtest(frame, "sma_cross", PARAMS, CASH, COMMISSION, engine="event")
    theirs = backtesting_py_run(frame)
    samples: dict[str, list[float]] = {
        "ours_event": [], "backtesting_py": [], "ours_event_cpu": [], "backtesting_py_cpu": []
    }  # fmt: skip
    if before is not None:
        samples["before_event"], samples["before_event_cpu"] = [], []
    for _ in range(rounds):
        for name, run in (
            ("ours_event", lambda: run_backtest(frame, "sma_cross", PARAMS, CASH, COMMISSION,
                                                "event")),
            ("backtesting_py", lambda: backtesting_py_run(frame)),
        ):  # fmt: skip
            wall, cpu = timed_cpu(run)
            samples[name].append(wall)
            samples[f"{name}_cpu"].append(cpu)
            if before is not None and name == "ours_event":
                wall, cpu, trades, final = before_run(before, frame.height)
                assert (trades, final) == (ours.stats["trades"], ours.stats["final_equity"]), (
                    "the code before made other trades",
                    trades,
                    final,
                )
                samples["before_event"].append(wall)
                samples["before_event_cpu"].append(cpu)
    figures: dict[str, Any] = {k: median(v) for k, v in samples.items()}
    figures["trades"] = int(ours.stats["trades"] or 0)
    figures["rejected_orders"] = int(ours.stats["rejected_orders"] or 0)
    assert figures["rejected_orders"] == 0, ours.rejections
    figures["trades_backtesting_py"] = int(theirs["# Trades"])
    figures["final_equity"] = ours.stats["final_equity"]
    figures["final_equity_backtesting_py"] = float(theirs["Equity Final [$]"])
    return figures


def memory_child(n: int, engine: str) -> None:
    frame = random_walk_bars(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    run_backtest(frame, "sma_cross", PARAMS, CASH, COMMISSION, engine)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{before / 1024:.0f} {peak / 1024:.0f} {elapsed:.3f}")


def bench_memory(n: int, engine: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n), "--memory-engine", engine],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    before, peak, seconds = (float(x) for x in out[-3:])
    return {"bars": n, "engine": engine, "rss_before_mb": before, "rss_peak_mb": peak,
            "seconds": seconds}  # fmt: skip


def bench_grid(frame: pl.DataFrame) -> dict[str, Any]:
    grid = {"fast": list(range(5, 55, 5)), "slow": list(range(60, 160, 10))}
    started = time.perf_counter()
    table = sweep(frame, "sma_cross", grid, cash=CASH, commission=COMMISSION, sort_by="sharpe")
    elapsed = time.perf_counter() - started
    best = table.row(0, named=True)
    return {
        "points": table.height,
        "bars": frame.height,
        "seconds": elapsed,
        "best": {"fast": best["fast"], "slow": best["slow"], "sharpe": best["sharpe"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-bars", type=int, default=10_000_000)
    parser.add_argument("--grid-bars", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("vector", "event"), help="one engine and its peer")
    parser.add_argument(
        "--before", type=Path, help="a directory with an earlier cift/: its event engine too"
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-engine", default="vector", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.memory_engine)
        return 0
    frame = random_walk_bars(args.bars)
    run_backtest(frame.head(2000), "sma_cross", PARAMS)  # compile (and cache) the kernels
    run_backtest(frame.head(2000), "sma_cross", PARAMS, engine="event")
    only = f" --only {args.only}" if args.only else ""
    only += f" --before {args.before}" if args.before else ""
    print(f"# python bench/bench_backtest.py --bars {args.bars} --rounds {args.rounds}{only}")
    print(f"# machine: {machine()}")
    if args.only == "event":
        event = bench_event(frame, args.rounds, args.before)
        print(f"\nsma_cross 10/30, {args.bars:,} bars, {event['trades']:,} trades, medians of "
              f"{args.rounds}")  # fmt: skip
        print_event(event)
        record("bench_backtest_event", {"bars": args.bars, "event": event})
        return 0
    vector = bench_vector(frame, args.rounds)
    if args.only == "vector":
        print_vector(vector, args.bars, args.rounds)
        record("bench_backtest_vector", {"bars": args.bars, "vector": vector})
        return 0
    event = bench_event(frame, args.rounds, args.before)
    memory = [bench_memory(args.memory_bars, engine) for engine in ("vector", "event")]
    grid = bench_grid(random_walk_bars(args.grid_bars))
    print_vector(vector, args.bars, args.rounds)
    print_event(event)
    for run in memory:
        print(f"memory: {run['engine']} run_backtest on {run['bars']:,} bars: peak RSS "
              f"{run['rss_peak_mb']:,.0f} MB ({run['rss_before_mb']:,.0f} MB with the bars "
              f"alone), {run['seconds']:.2f} s")  # fmt: skip
    print(f"grid: {grid['points']} points on {grid['bars']:,} bars in {grid['seconds']:.1f} s "
          f"(best {grid['best']})")  # fmt: skip
    record("bench_backtest", {"bars": args.bars, "vector": vector, "event": event,
                              "memory": memory, "grid": grid})  # fmt: skip
    return 0


def print_vector(vector: dict[str, Any], bars: int, rounds: int) -> None:
    print(f"\nsma_cross 10/30, {bars:,} bars, {vector['trades']:,} trades, medians of {rounds}")
    print("| what | ours (s) | peer (s) | peer / ours | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| vector engine vs vectorbt from_signals | {vector['ours_engine']:.4f} | "
          f"{vector['vectorbt']:.4f} | {vector['vectorbt'] / vector['ours_engine']:.1f}x | >= 5x |")  # fmt: skip
    print(f"| vector run_backtest (checks + stats) vs vectorbt | {vector['ours_run']:.4f} | "
          f"{vector['vectorbt']:.4f} | {vector['vectorbt'] / vector['ours_run']:.1f}x | |")  # fmt: skip


def print_event(event: dict[str, Any]) -> None:
    print("| what | ours (s) | peer (s) | peer / ours | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| event engine vs backtesting.py | {event['ours_event']:.3f} | "
          f"{event['backtesting_py']:.3f} | {event['backtesting_py'] / event['ours_event']:.1f}x "
          "| >= 10x |")  # fmt: skip
    print(f"| event engine vs backtesting.py, CPU seconds | {event['ours_event_cpu']:.3f} | "
          f"{event['backtesting_py_cpu']:.3f} | "
          f"{event['backtesting_py_cpu'] / event['ours_event_cpu']:.1f}x | >= 10x |")  # fmt: skip
    if "before_event" in event:
        print(f"| event engine before (--before) vs backtesting.py, CPU seconds | "
              f"{event['before_event_cpu']:.3f} | {event['backtesting_py_cpu']:.3f} | "
              f"{event['backtesting_py_cpu'] / event['before_event_cpu']:.1f}x | |")  # fmt: skip
        print(f"| event engine now vs before, CPU seconds | {event['ours_event_cpu']:.3f} | "
              f"{event['before_event_cpu']:.3f} | "
              f"{event['before_event_cpu'] / event['ours_event_cpu']:.2f}x | |")  # fmt: skip
        print(f"| event engine now vs before, wall | {event['ours_event']:.3f} | "
              f"{event['before_event']:.3f} | "
              f"{event['before_event'] / event['ours_event']:.2f}x | |")  # fmt: skip
    print(f"\nevent trades {event['trades']:,} (backtesting.py {event['trades_backtesting_py']:,}), "
          f"{event['rejected_orders']} orders refused by the pre-trade checks; "
          f"final equity {event['final_equity']:,.2f} (backtesting.py "
          f"{event['final_equity_backtesting_py']:,.2f})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
