"""The benches' reading of histograms from a service's /metrics text."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.histograms import histogram_totals


def test_sums_and_counts_of_the_picked_histograms_only() -> None:
    registry = CollectorRegistry()
    stages = Histogram("stage_seconds", "", ["stage"], registry=registry)
    calls = Histogram("rpc_seconds", "", ["method"], registry=registry)
    stages.labels("risk").observe(0.25)
    stages.labels("risk").observe(0.5)
    stages.labels("write").observe(1.0)
    calls.labels("SubmitOrder").observe(2.0)
    calls.labels("GetOrder").observe(8.0)
    text = generate_latest(registry).decode()

    def pick(family: str, labels: Mapping[str, str]) -> str | None:
        if family == "stage_seconds":
            return labels["stage"]
        return "handler" if labels.get("method") == "SubmitOrder" else None

    assert histogram_totals(text, pick) == {
        "risk": (0.75, 2.0),
        "write": (1.0, 1.0),
        "handler": (2.0, 1.0),
    }
    assert histogram_totals(text, lambda family, labels: None) == {}
