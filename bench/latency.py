"""What the latency benches share: open- and closed-loop drivers, percentiles, CPU time.

Imported by the bench scripts as `bench.latency` (each puts the repository root on
`sys.path`), so their figures are computed identically and can be compared.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

# One call: awaits it and returns how long it took, in seconds.
TimedCall = Callable[[], Awaitable[float]]


async def fixed_rate(call: TimedCall, rate: float, duration_s: float) -> list[float]:
    """Open loop: start one call every 1/rate seconds whatever the previous ones do.

    Latencies (seconds) include any queueing when the server falls behind, which a
    closed loop would hide by slowing its own sending.
    """
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one() -> None:
        latencies.append(await call())

    start = time.perf_counter()
    for i in range(int(rate * duration_s)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies


async def saturate(call: TimedCall, concurrency: int, duration_s: float) -> float:
    """Closed loop: `concurrency` callers back to back; returns completed calls per second."""
    done = 0
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0.99 for p99) of the sorted sample; nearest rank, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
