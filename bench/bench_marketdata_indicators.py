"""Indicators on 1M points: our Numba kernels vs TA-Lib vs plain Python loops.

Run: python bench/bench_marketdata_indicators.py [--points 1000000] [--rounds 41]
Prints medians and minima (ms) and each kernel's time as a multiple of TA-Lib's three
ways: median over median, minimum over minimum, and the median of the per-round ratios
(ours and TA-Lib timed back to back, so a noisy neighbour's burst hits both: the most
robust of the three on a shared machine). Compile time is excluded (every kernel is
called once before timing); rounds are interleaved, and which of the two goes first
alternates from round to round, so neither always inherits the other's cache state.
Our MACD runs a series this long in parts, two per loop, and on two cores when the load
average leaves one free (`cift.indicators`, `_macd_split`); every other kernel, and
TA-Lib, on one core.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import talib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import machine, record
from cift import indicators as ind
from cift.parallel_tasks import HELPERS


def py_sma(x: list[float], n: int) -> list[float]:
    out = [math.nan] * len(x)
    total = 0.0
    for i, v in enumerate(x):
        total += v
        if i >= n:
            total -= x[i - n]
        if i >= n - 1:
            out[i] = total / n
    return out


def py_ema(x: list[float], n: int) -> list[float]:
    out = [math.nan] * len(x)
    k = 2.0 / (n + 1)
    ema = sum(x[:n]) / n
    out[n - 1] = ema
    for i in range(n, len(x)):
        ema = (x[i] - ema) * k + ema
        out[i] = ema
    return out


def py_rsi(x: list[float], n: int) -> list[float]:
    out = [math.nan] * len(x)
    gain = loss = 0.0
    for i in range(1, n + 1):
        change = x[i] - x[i - 1]
        gain += max(change, 0.0)
        loss += max(-change, 0.0)
    gain /= n
    loss /= n
    out[n] = 100.0 * gain / (gain + loss) if gain + loss else 0.0
    for i in range(n + 1, len(x)):
        change = x[i] - x[i - 1]
        gain = (gain * (n - 1) + max(change, 0.0)) / n
        loss = (loss * (n - 1) + max(-change, 0.0)) / n
        out[i] = 100.0 * gain / (gain + loss) if gain + loss else 0.0
    return out


def py_macd(x: list[float]) -> list[float]:
    fast, slow = py_ema(x[14:], 12), py_ema(x, 26)
    line = [f - s for f, s in zip([math.nan] * 14 + fast, slow, strict=True)]
    return py_ema(line[25:], 9)


def py_bbands(x: list[float], n: int, k: float) -> list[float]:
    out = [math.nan] * len(x)
    s = s2 = 0.0
    for i, v in enumerate(x):
        s += v
        s2 += v * v
        if i >= n:
            s -= x[i - n]
            s2 -= x[i - n] ** 2
        if i >= n - 1:
            mean = s / n
            out[i] = mean + k * math.sqrt(max(s2 / n - mean * mean, 0.0))
    return out


def py_vwap(p: list[float], v: list[float]) -> list[float]:
    out = []
    pv = vol = 0.0
    for price, size in zip(p, v, strict=True):
        pv += price * size
        vol += size
        out.append(pv / vol if vol else math.nan)
    return out


def py_ofi(b: list[float], bs: list[float], a: list[float], asz: list[float]) -> list[float]:
    out = [math.nan]
    for i in range(1, len(b)):
        e = 0.0
        if b[i] >= b[i - 1]:
            e += bs[i]
        if b[i] <= b[i - 1]:
            e -= bs[i - 1]
        if a[i] <= a[i - 1]:
            e -= asz[i]
        if a[i] >= a[i - 1]:
            e += asz[i - 1]
        out.append(e)
    return out


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    n = args.points
    rng = np.random.default_rng(42)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    volume = rng.integers(1, 1000, n).astype(np.float64)
    bid = np.round(close - 0.01, 2)
    ask = np.round(close + 0.01, 2)
    bid_size = rng.integers(1, 20, n) * 100.0
    ask_size = rng.integers(1, 20, n) * 100.0
    xs, vs, bl, bsl, al, asl = (a.tolist() for a in (close, volume, bid, bid_size, ask, ask_size))

    # name -> (ours, TA-Lib or None, pure Python)
    cases: dict[
        str, tuple[Callable[[], object], Callable[[], object] | None, Callable[[], object]]
    ] = {
        "SMA(20)": (
            lambda: ind.sma(close, 20),
            lambda: talib.SMA(close, 20),
            lambda: py_sma(xs, 20),
        ),
        "EMA(12)": (
            lambda: ind.ema(close, 12),
            lambda: talib.EMA(close, 12),
            lambda: py_ema(xs, 12),
        ),
        "RSI(14)": (
            lambda: ind.rsi(close, 14),
            lambda: talib.RSI(close, 14),
            lambda: py_rsi(xs, 14),
        ),
        "MACD(12,26,9)": (
            lambda: ind.macd(close),
            lambda: talib.MACD(close, 12, 26, 9),
            lambda: py_macd(xs),
        ),
        "BBANDS(20,2)": (
            lambda: ind.bbands(close, 20, 2.0),
            lambda: talib.BBANDS(close, 20, 2, 2),
            lambda: py_bbands(xs, 20, 2.0),
        ),
        "VWAP": (lambda: ind.vwap(close, volume), None, lambda: py_vwap(xs, vs)),
        "OFI": (
            lambda: ind.order_flow_imbalance(bid, bid_size, ask, ask_size),
            None,
            lambda: py_ofi(bl, bsl, al, asl),
        ),
        "book imbalance": (
            lambda: ind.book_imbalance(bid_size, ask_size),
            None,
            lambda: [(b - a) / (b + a) for b, a in zip(bsl, asl, strict=True)],
        ),
    }
    for ours, theirs, _ in cases.values():  # compile and warm caches
        ours()
        if theirs:
            theirs()
    ours_t: dict[str, list[float]] = {k: [] for k in cases}
    talib_t: dict[str, list[float]] = {k: [] for k in cases}
    for round_ in range(args.rounds):
        for name, (ours, theirs, _) in cases.items():
            if theirs and round_ % 2:
                talib_t[name].append(timed(theirs))
            ours_t[name].append(timed(ours))
            if theirs and not round_ % 2:
                talib_t[name].append(timed(theirs))
    python_t = {name: timed(pure) for name, (_, _, pure) in cases.items()}

    print(f"# python bench/bench_marketdata_indicators.py --points {n} --rounds {args.rounds}")
    print(
        f"# {n:,} points; times in ms (median / min of {args.rounds} interleaved rounds; pure Python: one run)"
    )
    header = (
        f"{'indicator':<16}{'ours med':>10}{'ours min':>10}{'TA-Lib med':>12}{'TA-Lib min':>12}"
    )
    header += f"{'x TA-Lib':>10}{'x by min':>10}{'x paired':>10}{'pure Py':>10}{'x Py':>8}"
    header += f"{'Mpts/s':>9}"
    print(header)
    figures: dict[str, dict[str, float]] = {}
    for name in cases:
        o_med, o_min = statistics.median(ours_t[name]) * 1e3, min(ours_t[name]) * 1e3
        figures[name] = {"ours_ms": o_med, "python_ms": python_t[name] * 1e3}
        if talib_t[name]:
            t_med, t_min = statistics.median(talib_t[name]) * 1e3, min(talib_t[name]) * 1e3
            paired = statistics.median(
                o / t for o, t in zip(ours_t[name], talib_t[name], strict=True)
            )
            figures[name] |= {
                "talib_ms": t_med,
                "x_talib": o_med / t_med,
                "x_talib_min": o_min / t_min,
                "x_talib_paired": paired,
            }
            ratio = f"{o_med / t_med:>10.2f}{o_min / t_min:>10.2f}{paired:>10.2f}"
            t_cols = f"{t_med:>12.2f}{t_min:>12.2f}"
        else:
            t_cols, ratio = f"{'-':>12}{'-':>12}", f"{'-':>10}" * 3
        py_ms = python_t[name] * 1e3
        print(
            f"{name:<16}{o_med:>10.2f}{o_min:>10.2f}{t_cols}{ratio}{py_ms:>10.0f}"
            f"{py_ms / o_med:>8.0f}{n / o_med / 1e3:>9.0f}"
        )
    macd_cores = HELPERS + 1 if n >= ind._SPLIT_MIN_POINTS else 1
    print(
        f"# ours: MACD in parts, two per loop, on up to {macd_cores} core(s) while the load"
        " average leaves one free; the rest on one; TA-Lib all on one"
    )
    print(f"# machine: {machine()}")
    record("bench_marketdata_indicators", {"points": n, "indicators": figures})


if __name__ == "__main__":
    main()
