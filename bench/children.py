"""A bench's helper processes: the same script run again as `_child`, its figures read back.

A publisher or a load generator in its own process keeps its CPU off the process being
measured; it reports on its last stdout line as one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_child(script: str, *args: str, timeout_s: float) -> dict[str, Any]:
    """Run `script _child ARGS…` to the end and return the JSON object it printed last."""
    output = subprocess.run(
        [sys.executable, script, "_child", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))
