"""`make bench`'s runner turns recorded figures into SUMMARY.md and the plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import figures, run_all


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(figures, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    return tmp_path


def test_summary_names_the_floor_of_the_run_and_every_bench(results_dir: Path) -> None:
    floor = {"rate_per_s": 1000, "bare": {"p50_ms": 0.81, "p99_ms": 1.9, "calls_per_s": 5100}}
    (results_dir / "bench_grpc_floor.json").write_text(
        json.dumps({"command": "python bench/bench_grpc_floor.py", "machine": {}, "figures": floor})
    )
    (results_dir / "bench_grpc_floor.txt").write_text("| bare | 1 | 0.81 |\n")
    summary = run_all.write_summary(
        [
            {
                "name": "bench_grpc_floor",
                "date": "2026-12-06 00:05",
                "load": 0.5,
                "seconds": 12.0,
                "exit": 0,
            }
        ]
    ).read_text()
    assert "p50 0.81 ms, p99 1.90 ms, 5,100 calls/s" in summary
    assert (
        "| bench_grpc_floor | 2026-12-06 00:05 | `python bench/bench_grpc_floor.py` | 0.50 "
        "| 0.81 / 1.90 ms | 12 | 0 |"
    ) in summary
    assert "| bare | 1 | 0.81 |" in summary


def test_plots_are_drawn_from_recorded_figures(results_dir: Path) -> None:
    figures.record(
        "bench_marketdata_indicators",
        {"points": 1000, "indicators": {"EMA(12)": {"ours_ms": 1.0, "x_talib": 0.8}}},
    )
    figures.record(
        "bench_grpc_floor", {"bare": {"latency_samples_ms": [0.5, 0.7, 1.2], "p50_ms": 0.7}}
    )
    written = {p.name for p in run_all.write_plots()}
    assert written == {"indicators_vs_talib.png", "latency_at_fixed_rate.png"}
    assert all((results_dir / name).stat().st_size > 1000 for name in written)


def test_a_rerun_of_one_bench_keeps_the_other_rows(results_dir: Path) -> None:
    first = {"name": "bench_risk", "date": "d1", "load": 1.0, "seconds": 1.0, "exit": 0}
    run_all.remember(first)
    run_all.remember(
        {"name": "bench_grpc_floor", "date": "d1", "load": 2.0, "seconds": 1.0, "exit": 0}
    )
    run_all.remember(first | {"date": "d2", "load": 3.0})
    rows = run_all.recalled()
    # The floor first (it comes first in a run), and the risk bench's latest run only.
    assert [(r["name"], r["date"]) for r in rows] == [
        ("bench_grpc_floor", "d1"),
        ("bench_risk", "d2"),
    ]


def test_the_floor_and_in_process_benches_run_before_stack_benches() -> None:
    names = run_all.bench_names()
    assert names[0] == "bench_grpc_floor"
    assert names[1 : 1 + len(run_all.IN_PROCESS)] == list(run_all.IN_PROCESS)
    assert set(names) == {p.stem for p in run_all.BENCH_DIR.glob("bench_*.py")}


def test_a_bench_that_hangs_is_stopped(results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hanging = results_dir / "bench_hangs.py"
    hanging.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", results_dir)
    run = run_all.run_one("bench_hangs", 1, 1, timeout_s=0.5)
    assert run["exit"] != 0 and run["seconds"] < 30
    assert "started" in (results_dir / "bench_hangs.txt").read_text()
