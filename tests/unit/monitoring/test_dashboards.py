"""The Grafana dashboards in deploy/k8s/base/monitoring/dashboards: loadable by Grafana's
own dashboard model, laid out without overlaps, and shipped by kustomize to the sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy/k8s/base/monitoring"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_there_is_a_services_and_a_trading_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["cift-services.json", "cift-trading.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_grafanas_dashboard_model_reads_every_field_back(path: Path) -> None:
    document = load(path)
    model = Dashboard.from_json(document)
    # A field Grafana's model does not know, or one of the wrong type, would not survive.
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == document


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_have_unique_ids_queries_and_a_place_on_the_grid(path: Path) -> None:
    document = load(path)
    assert document["schemaVersion"] >= 36
    panels = document["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert panel["description"]


def test_kustomize_ships_each_dashboard_in_a_configmap_for_grafanas_sidecar() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy/k8s/base/kustomization.yaml").read_text())
    (generator,) = [
        g for g in kustomization["configMapGenerator"] if g["name"] == "cift-grafana-dashboards"
    ]
    assert generator["options"]["labels"] == {"grafana_dashboard": "1"}
    assert sorted(generator["files"]) == [f"monitoring/dashboards/{p.name}" for p in DASHBOARDS]
    assert "monitoring/alerts.yaml" in kustomization["resources"]
