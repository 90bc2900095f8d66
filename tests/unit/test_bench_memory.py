"""The soak's memory sampler: kinds of memory read apart, and the bound on each kind."""

from __future__ import annotations

import os

import pytest

from bench.memory import (
    RING_ITEM_KIB,
    Footprint,
    add_up,
    parse_smaps_rollup,
    setting_mib,
    tree_footprint,
    verdicts,
)

# A PostgreSQL backend's rollup: most of what it maps is the shared buffer pool.
BACKEND_ROLLUP = """\
55d0c0a00000-7ffd2fac1000 ---p 00000000 00:00 0                          [rollup]
Rss:               40960 kB
Pss:               12288 kB
Pss_Dirty:          9216 kB
Pss_Anon:           2048 kB
Pss_File:           1024 kB
Pss_Shmem:          9216 kB
Shared_Clean:       4096 kB
Shared_Dirty:      30720 kB
Private_Clean:      1024 kB
Private_Dirty:      5120 kB
"""


def test_a_rollup_is_read_by_kind_in_bytes() -> None:
    assert parse_smaps_rollup(BACKEND_ROLLUP) == {
        "anon": 2048 * 1024,
        "shmem": 9216 * 1024,
        "file": 1024 * 1024,
        "rss": 40960 * 1024,
    }


def test_a_tree_adds_its_members_and_the_kinds_add_up_to_the_pss() -> None:
    backend = parse_smaps_rollup(BACKEND_ROLLUP)
    tree = add_up([backend, backend, backend])
    assert tree == Footprint(anon=6.0, shmem=27.0, file=3.0, rss=120.0, processes=3)
    assert tree.pss == 36.0  # three times the rollup's Pss line


def test_this_process_has_a_footprint_of_its_own() -> None:
    footprint = tree_footprint(os.getpid())
    assert footprint is not None
    assert footprint.processes >= 1
    assert footprint.anon > 0
    assert footprint.pss <= footprint.rss


@pytest.mark.parametrize(
    ("text", "mib"), [("143MB", 143.0), ("8kB", 0.0078125), ("1GB", 1024.0), (" 2 MB ", 2.0)]
)
def test_postgres_sizes_are_read_as_show_prints_them(text: str, mib: float) -> None:
    assert setting_mib(text) == mib


def test_a_size_postgres_would_not_print_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL memory size"):
        setting_mib("143")


def _series(anon: list[float], shmem: list[float]) -> list[Footprint]:
    return [Footprint(a, s, 10.0, a + s + 10.0, 9) for a, s in zip(anon, shmem, strict=True)]


def test_shared_buffers_filling_up_to_their_segment_pass() -> None:
    # The buffer cache fills from 20 to 140 MiB of a 143 MiB segment; the heaps stay flat.
    found = verdicts(
        "postgres", _series([50.0] * 10, [20.0 + 12 * i for i in range(10)]), 10.0, 143.0
    )
    by_kind = {v.kind: v for v in found}
    assert by_kind["shmem"].within
    assert by_kind["shmem"].bound == 143.0
    assert by_kind["anon"].within


def test_a_leaking_heap_fails_however_flat_the_shared_memory() -> None:
    found = verdicts("postgres", _series([50.0 + 8 * i for i in range(10)], [100.0] * 10), 10, 143)
    anon = next(v for v in found if v.kind == "anon")
    assert not anon.within
    # Median of the second fifth (66 and 74 MiB) plus 20 % and 16 MiB.
    assert anon.early == 70.0 and anon.bound == pytest.approx(70.0 * 1.2 + 16)


def test_shared_memory_of_a_process_without_a_segment_is_held_to_the_growth_rule() -> None:
    found = verdicts("gateway", _series([80.0] * 10, [1.0 + 5 * i for i in range(10)]), 10, None)
    shmem = next(v for v in found if v.kind == "shmem")
    assert not shmem.within
    assert shmem.rule.startswith("+20%")


def test_postgres_heaps_are_judged_per_backend_as_the_pools_open_more() -> None:
    # 10 → 20 backends of 2.5 MiB each: the total doubles, no backend grew.
    series = [Footprint(2.5 * n, 50.0, 7.0, 0.0, n) for n in range(10, 20)]
    found = verdicts("postgres", series, 10.0, 148.0, 4.0)
    per_backend = found[0]
    assert per_backend.kind == "anon per process" and per_backend.within
    assert per_backend.bound == pytest.approx(2.5 * 1.2 + 4.0)
    # The same backends each growing by 8 MiB fail.
    grown = [Footprint((2.5 + i) * 10, 50.0, 7.0, 0.0, 10) for i in range(10)]
    assert not verdicts("postgres", grown, 10.0, 148.0, 4.0)[0].within


def test_the_restarted_broker_is_held_to_its_limit_however_it_saws() -> None:
    # Climbs to ~60 MiB, restarted empty, climbs again: late and early medians say little.
    saw = [5.0 + 11 * (i % 6) for i in range(20)]
    anon = verdicts("kafka", _series(saw, [0.0] * 20), 10.0, anon_cap_mib=64.0)[0]
    assert anon.within and anon.late == 60.0 and anon.bound == 80.0
    assert anon.rule.startswith("highest")
    # Never restarted: it passes the limit and fails, even though it grows steadily.
    climb = [5.0 + 5 * i for i in range(20)]
    assert not verdicts("kafka", _series(climb, [0.0] * 20), 10.0, anon_cap_mib=64.0)[0].within


def test_market_data_may_grow_by_what_its_rings_took_on_and_no_more() -> None:
    # 10 samples: the rings go from 10,000 to 100,000 items (~88 MiB at 1 KiB each).
    items = [10_000.0 * (i + 1) for i in range(10)]
    # Medians of the second fifth (30k, 40k items) and of the last (90k, 100k).
    early = 200.0 + 25_000 * RING_ITEM_KIB / 1024
    ring = 60_000 * RING_ITEM_KIB / 1024
    filling = [200.0 + (n - items[0]) * RING_ITEM_KIB / 1024 for n in items]
    (anon,) = [v for v in verdicts("marketdata", _series(filling, [0.0] * 10), 10.0,
                                   held_items=items) if v.kind == "anon"]  # fmt: skip
    assert anon.within
    assert anon.bound == pytest.approx(early * 1.2 + 16 + ring)
    assert "ring items" in anon.rule
    leaking = [a + 60.0 * i for i, a in enumerate(filling)]  # 60 MiB a sample more
    (anon,) = [v for v in verdicts("marketdata", _series(leaking, [0.0] * 10), 10.0,
                                   held_items=items) if v.kind == "anon"]  # fmt: skip
    assert not anon.within


def _files(file: list[float]) -> list[Footprint]:
    return [Footprint(10.0, 0.0, f, f + 10.0, 1) for f in file]


def test_file_pages_dropped_by_the_kernel_and_faulted_back_in_are_not_growth() -> None:
    # 50 MiB mapped, dropped to 27 under another job's memory pressure, then back.
    dipped = [50.0, 27.0, 27.0, 27.0, 30.0, 40.0, 50.0, 51.0, 51.0, 52.0]
    (file,) = [v for v in verdicts("gateway", _files(dipped), 10.0) if v.kind == "file"]
    assert file.within
    assert file.bound == pytest.approx(50.0 * 1.2 + 16)
    # Mapping ever more (a file mapped per request, never unmapped) still fails.
    mapping_more = [50.0 + 10 * i for i in range(10)]
    (file,) = [v for v in verdicts("gateway", _files(mapping_more), 10.0) if v.kind == "file"]
    assert not file.within
