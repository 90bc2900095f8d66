"""Memory of a process tree split by kind, and the soak's bound on each kind.

A process's proportional set size (PSS) mixes three things that behave differently
over a long run, so the soak samples them apart (Linux `/proc/PID/smaps_rollup`):

- anonymous memory (`Pss_Anon`): heaps, stacks, caches a process builds for itself.
  A leak shows here, so this is what must level off.
- shared memory (`Pss_Shmem`): System V / POSIX segments, PostgreSQL's shared buffers,
  WAL buffers and lock tables. Each page is split between the processes that touched
  it, so the sum over PostgreSQL's backends counts each page once. It grows as the
  buffer cache fills and cannot pass the segment's configured size.
- file-backed memory (`Pss_File`): the binary, libraries and mapped files. Their
  pages are page cache: the kernel drops them under memory pressure and a process
  faults them back in as it runs, so this kind dips and recovers with the machine's
  other work, up to what the process maps.

"Private" in smaps (mapcount 1) is not the same as anonymous: a shared-buffer page
only one backend has touched counts as private, so USS would mistake the buffer cache
filling for backends growing. The split by kind has no such ambiguity, and the three
kinds add up to the PSS exactly.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

MIB = 1 << 20
GROWTH_RATIO = 0.20
GROWTH_SLACK_MIB = 16.0
_FIELDS = {"Pss_Anon:": "anon", "Pss_Shmem:": "shmem", "Pss_File:": "file", "Rss:": "rss"}


@dataclass(frozen=True)
class Footprint:
    """One sample of a process tree, in MiB; `processes` counts the tree's members."""

    anon: float
    shmem: float
    file: float
    rss: float
    processes: int

    @property
    def pss(self) -> float:
        return self.anon + self.shmem + self.file


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """The kinds of memory in one `smaps_rollup`, in bytes (the file says kB)."""
    found = dict.fromkeys(_FIELDS.values(), 0)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in _FIELDS:
            found[_FIELDS[parts[0]]] = int(parts[1]) * 1024
    return found


def add_up(rollups: Iterable[dict[str, int]]) -> Footprint:
    """One footprint for the processes whose rollups these are."""
    totals = dict.fromkeys(_FIELDS.values(), 0)
    count = 0
    for rollup in rollups:
        count += 1
        for kind in totals:
            totals[kind] += rollup[kind]
    return Footprint(
        anon=totals["anon"] / MIB,
        shmem=totals["shmem"] / MIB,
        file=totals["file"] / MIB,
        rss=totals["rss"] / MIB,
        processes=count,
    )


def tree_footprint(pid: int) -> Footprint | None:
    """A process and all its descendants (PostgreSQL's backends), or None once it is gone."""
    try:
        root = psutil.Process(pid)
        pids = [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return None
    rollups = []
    for member in pids:
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # a backend that ended between the listing and the read
        rollups.append(parse_smaps_rollup(text))
    return add_up(rollups) if rollups else None


def setting_mib(text: str) -> float:
    """A PostgreSQL memory setting as SHOW prints it (`143MB`, `8kB`, `1GB`), in MiB."""
    match = re.fullmatch(r"(\d+)\s*(kB|MB|GB|TB)", text.strip())
    if match is None:
        raise ValueError(f"not a PostgreSQL memory size: {text!r}")
    number, unit = match.groups()
    return int(number) * {"kB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0**2}[unit]


@dataclass(frozen=True)
class Verdict:
    """One kind of memory of one process: its medians, its bound and whether it held."""

    process: str
    kind: str
    early: float
    late: float
    per_minute: float
    bound: float
    rule: str

    @property
    def within(self) -> bool:
        return self.late <= self.bound


# What one stream-ring item (a protobuf quote, trade or bar with its upb arena) costs
# market data: 60,000 quotes and trades stamped from the simulator add 55 MiB of RSS,
# ~0.94 KiB each (docs/RELIABILITY.md, "Market data's growth"), rounded up.
RING_ITEM_KIB = 1.0


def medians(series: Sequence[float]) -> tuple[float, float]:
    """Median of the second fifth (the first is warm-up) and of the last fifth."""
    fifth = max(1, len(series) // 5)
    return statistics.median(series[fifth : 2 * fifth] or series), statistics.median(
        series[-fifth:]
    )


def verdicts(
    process: str,
    series: Sequence[Footprint],
    minutes: float,
    shmem_cap_mib: float | None = None,
    backend_slack_mib: float | None = None,
    anon_cap_mib: float | None = None,
    held_items: Sequence[float] | None = None,
) -> list[Verdict]:
    """The bound on each kind, stated before the run.

    Anonymous memory may grow by at most 20 % + 16 MiB between the medians: a leak of
    a few kilobytes per order fails a 30-minute run. File-backed memory may reach at
    most 20 % + 16 MiB above its highest sample of the first two fifths (its pages come
    and go with the page cache). Shared memory
    is held to `shmem_cap_mib` when the process has a configured segment (PostgreSQL's
    `shared_memory_size`): filling it is a cache reaching its size, not growth. With
    `backend_slack_mib` (PostgreSQL's `work_mem`), anonymous memory is judged per
    process of the tree instead: the pools open backends as load needs them, each with
    its own caches, so the total follows the connection count; a backend may grow by
    20 % + one sort's or hash's `work_mem`. With `anon_cap_mib` (the embedded broker's
    `CIFT_KAFKA_MEMORY_LIMIT_MIB`: `cift up` restarts it, empty, past that), anonymous
    memory rises and falls by design: its highest sample after the warm-up fifth must
    stay within the limit + 16 MiB (what it may take on between two of the guard's 30 s
    checks). With `held_items` (market data's stream rings: items held at each sample),
    anonymous memory may also grow by what the rings took on between the two medians,
    at `RING_ITEM_KIB` each: the rings fill up to `CIFT_MARKETDATA_STREAM_RING` items by
    design (at the simulator's rate the trade ring takes ~42 min), and any growth beyond
    what they hold still fails.
    """
    found = []
    growth_rule = f"+{GROWTH_RATIO:.0%} +{GROWTH_SLACK_MIB:g} MiB"
    for kind in ("anon", "shmem", "file"):
        values = [getattr(sample, kind) for sample in series]
        slack, rule = GROWTH_SLACK_MIB, growth_rule
        if kind == "anon" and backend_slack_mib is not None:
            values = [sample.anon / sample.processes for sample in series]
            kind, slack = "anon per process", backend_slack_mib
            rule = f"+{GROWTH_RATIO:.0%} +work_mem {backend_slack_mib:g} MiB"
        early, late = medians(values)
        # The medians are three fifths of the run apart.
        per_minute = (late - early) / (minutes * 3 / 5)
        if kind == "anon" and anon_cap_mib is not None:
            late = max(values[max(1, len(values) // 5) :] or values)
            bound, rule = anon_cap_mib + GROWTH_SLACK_MIB, "highest <= limit +16 MiB"
        elif kind == "shmem" and shmem_cap_mib is not None:
            bound, rule = shmem_cap_mib, "configured segment"
        elif kind == "file":
            # Judged from the highest sample of the first two fifths, not their median:
            # a median taken while the kernel had dropped the process's pages would
            # count their return as growth (a 30-minute soak beside a test run: the
            # gateway 50.8 MiB at the first sample, 27.4 at the median, 51.6 at the end).
            warm = max(values[: 2 * max(1, len(values) // 5)])
            bound, rule = (
                warm * (1 + GROWTH_RATIO) + slack,
                f"{growth_rule} over the warm-up's highest",
            )
        else:
            bound = early * (1 + GROWTH_RATIO) + slack
            if kind == "anon" and held_items:
                early_items, late_items = medians(held_items)
                ring_mib = max(0.0, late_items - early_items) * RING_ITEM_KIB / 1024
                bound += ring_mib
                rule += f" +{ring_mib:.1f} MiB ring items"
        found.append(Verdict(process, kind, early, late, per_minute, bound, rule))
    return found
