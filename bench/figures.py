"""Where benchmark figures go: one JSON file per bench under bench/results/ (not committed).

`make bench` (bench/run_all.py) reads them back to write bench/results/SUMMARY.md and
the plots, so every figure in the README's performance table comes from a run on the
machine at hand, with the date, the command and the machine's load beside it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What a reader needs to weigh a figure: when, where, and how busy the machine was."""
    load_1m, load_5m, _ = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_1m": round(load_1m, 2),
        "load_5m": round(load_5m, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def record(bench: str, figures: dict[str, Any]) -> Path:
    """Write this run's figures for `bench` (the script's name without .py), with the
    command that produced them and the machine's state."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{bench}.json"
    command = "python " + " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    path.write_text(
        json.dumps({"command": command, "machine": machine(), "figures": figures}, indent=2) + "\n"
    )
    return path


def load(bench: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{bench}.json"
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
