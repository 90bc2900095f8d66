"""What every latency bench reports the same way: percentiles and a process's CPU time.

Imported by the bench scripts as `bench.latency` (each puts the repository root on
`sys.path`), so their figures are computed identically and can be compared.
"""

from __future__ import annotations

import os


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0.99 for p99) of the sorted sample; nearest rank, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
