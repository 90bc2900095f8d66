"""Sums and counts of Prometheus histograms in a service's /metrics text.

Benches read a service's histograms before and after a run and compare: the mean per
observation over the run is (sum after - sum before) / (count after - count before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client.parser import text_string_to_metric_families

# Which total a histogram's sample adds to, from its family name and labels; None skips it.
Pick = Callable[[str, Mapping[str, str]], str | None]


def histogram_totals(text: str, pick: Pick) -> dict[str, tuple[float, float]]:
    """(sum, count) of each histogram `pick` names, from the exposition `text`."""
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith(("_sum", "_count")):
                continue
            key = pick(family.name, sample.labels)
            if key is None:
                continue
            kept = totals.setdefault(key, [0.0, 0.0])
            kept[0 if sample.name.endswith("_sum") else 1] = sample.value
    return {key: (spent, count) for key, (spent, count) in totals.items()}
