"""The dashboards and alert rules read only metrics the services really export.

Each service's /metrics (from the running `stack`) is scraped; every metric name in
the dashboards' queries and the rules' expressions must be among them, or be one the
Kubernetes monitoring stack itself provides (`up`, kube-state-metrics' `kube_*`).
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml

from cift.stack.launcher import StackInfo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy/k8s/base/monitoring"
PROVIDED_BY_KUBERNETES = {"up", "kube_pod_container_status_restarts_total"}
# Identifiers that are PromQL, not metric names.
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "avg", "le",
    "without", "on", "ignoring", "and", "or", "unless", "count", "topk", "bottomk",
}  # fmt: skip
SUFFIXES = {
    # prometheus_client names a counter's family with or without `_total`.
    "counter": ("", "_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "info": ("_info",),
}


def exported_names(text: str) -> set[str]:
    """Every sample name a /metrics page can carry, from its TYPE lines."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_groupings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_strings = re.sub(r'"[^"]*"', "", without_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("__")}


def queried_names() -> dict[str, set[str]]:
    """Metric name → where it is used."""
    used: dict[str, set[str]] = {}
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in metric_names(target["expr"]):
                    used.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
    for group in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["spec"]["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(f"alerts.yaml: {rule['alert']}")
    return used


def test_metric_names_are_read_from_expressions() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(cift_x_bucket{service="a", le!="1"}[5m])))'
    assert metric_names(expr) == {"cift_x_bucket"}
    ratio = "sum by (service, code) (rate(cift_a_total[5m])) / sum without (pod) (cift_b)"
    assert metric_names(ratio) == {"cift_a_total", "cift_b"}


def test_every_queried_metric_is_exported_by_a_service(stack: StackInfo) -> None:
    exported: set[str] = set()
    for service, url in stack.metrics_urls.items():
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        names = exported_names(page)
        assert names, f"{service} exports no metrics at {url}"
        exported |= names
    used = queried_names()
    assert "cift_rpc_requests_total" in used and "cift_kafka_consumer_lag" in used
    unknown = {
        name: sorted(where)
        for name, where in used.items()
        if name not in exported and name not in PROVIDED_BY_KUBERNETES
    }
    assert not unknown, f"queried but exported by no service: {unknown}"
