"""`cift backtest` as a user runs it: table, --json, --report, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from cift.stack.cli import main


@pytest.fixture(scope="module")
def goog_csv(goog: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "goog.csv"
    goog.rename({"timestamp": "Date"}).write_csv(path)
    return path


ARGS = ["backtest", "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=30"]


def test_json_has_final_equity_and_trades(
    goog_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*ARGS, "--data", str(goog_csv), "--commission", "0.002", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["trades"] == 65
    assert round(out["final_equity"], 2) == 39_770.03
    assert out["params"] == {"fast": 10, "slow": 30, "short": 1}


def test_table_and_html_report(
    goog_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out.html"
    code = main([*ARGS, "--data", str(goog_csv), "--commission", "0.002", "--engine", "event",
                 "--report", str(report)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Final equity [$]              39,769.95" in out
    assert "Rejected orders               0" in out
    assert "Trades                        65" in out
    page = report.read_text()
    assert "Bokeh" in page and "Equity" in page and "Drawdown [%]" in page
    assert "close and trades" in page
    assert "Backtest: sma_cross fast=10, slow=30, short=1 (event engine)" in page
    assert page.count('"sizing_mode":"stretch_width"') >= 4  # a phone sees the whole run


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--param", "fast=40"], "fast (40) must be shorter than slow (30)"),
        (["--param", "fastest"], "--param takes NAME=VALUE, not 'fastest'"),
        (["--param", "speed=3"], "Unknown parameter speed for sma_cross"),
        (["--commission", "2"], "commission is a fraction"),
        (["--engine", "event", "--margin-multiplier", "5"], "margin_multiplier is between 1"),
        (["--margin-multiplier", "2"], "pass engine='event'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    goog_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    report = tmp_path / "never.html"
    code = main([*ARGS, "--data", str(goog_csv), *extra, "--report", str(report)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not report.exists()


def test_a_missing_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--data", str(tmp_path / "none.csv")]) == 2
    assert "No bars file at" in capsys.readouterr().err
