"""The PrometheusRule in deploy/k8s/base/monitoring: valid for Prometheus, and each alert
fires on what it is for and stays quiet otherwise (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULE = ROOT / "deploy/k8s/base/monitoring/alerts.yaml"
CASES = Path(__file__).with_name("alert_cases.yaml")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: `make setup` installs it (Debian's prometheus package)"
    return found


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULE.read_text())["spec"]["groups"]
    return groups


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups()}))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_pass_promtool_check(rules_file: Path) -> None:
    result = run("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_its_cause_and_not_otherwise(rules_file: Path, tmp_path: Path) -> None:
    cases = yaml.safe_load(CASES.read_text())
    cases["rule_files"] = [str(rules_file)]
    cases_file = tmp_path / "cases.yaml"
    cases_file.write_text(yaml.safe_dump(cases))
    result = run("test", "rules", str(cases_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_catches_an_alert_that_does_not_fire(
    rules_file: Path, tmp_path: Path
) -> None:
    cases = {
        "rule_files": [str(rules_file)],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": "cift_risk_kill_switch_engaged", "values": "0x10"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "CiftKillSwitchEngaged",
                        "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                    }
                ],
            }
        ],
    }
    cases_file = tmp_path / "cases.yaml"
    cases_file.write_text(yaml.safe_dump(cases))
    assert run("test", "rules", str(cases_file)).returncode != 0


def test_every_alert_says_how_bad_what_and_where_to_look() -> None:
    alerts = [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]
    assert {a["alert"] for a in alerts} >= {
        "CiftServiceErrors",
        "CiftSlowRpcs",
        "CiftKafkaConsumerLag",
        "CiftCrashLooping",
        "CiftKillSwitchEngaged",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
