"""docs/BACKTEST.md's notebook snippet, run as written against the stack's own bars.

It downloads bars with ExportBars and backtests them with `run_backtest`: if the
export's columns, the RPC or the library's inputs drift apart, this fails before the
page misleads anyone. The only edits are the gateway's address, a new email, and the
timeframe: the session stack has minutes of past, so 1Sec bars, not 1Min, give
sma_cross 10/30 the 31 bars it needs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.e2e_client import Rest, grpc_target, new_email

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HEADING = "### On a running stack's bars"


def snippet() -> str:
    text = (ROOT / "docs" / "BACKTEST.md").read_text()
    block = re.compile(r"```python\n(.*?)```", re.DOTALL).search(text, text.index(HEADING))
    assert block is not None, f"no python block under {HEADING!r} in docs/BACKTEST.md"
    return block.group(1)


def test_the_notebook_snippet_backtests_the_stacks_exported_bars(
    rest: Rest, gateway_url: str
) -> None:
    email = new_email("backtest-doc")
    rest.ok("POST", "/v1/auth/register", json={"email": email, "password": "correct horse battery"})
    script = snippet()
    for written, here in (
        ("localhost:8080", grpc_target(gateway_url)),
        ("ada@example.com", email),
        ('timeframe="1Min"', 'timeframe="1Sec"'),
    ):
        assert written in script
        script = script.replace(written, here)

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )

    assert done.returncode == 0, done.stderr
    shown = re.fullmatch(r"(\d+) bars, (\d+) trades, final equity [\d,]+\.\d\d\n", done.stdout)
    assert shown is not None, done.stdout
    assert int(shown.group(1)) >= 31 and int(shown.group(2)) >= 1
