"""The Grafana dashboard and its provisioning: the panels the issue asks for,
each querying the provisioned Prometheus datasource."""

from __future__ import annotations

import json

import yaml

from tests.deploy.support import DASHBOARD, DEPLOY_DIR, promql_metric_names

DATASOURCES = DEPLOY_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_has_the_panels_of_the_issue():
    panels = {p["title"]: p for p in dashboard()["panels"]}
    wanted = {
        "Request rate": "http_requests_total",
        "Error rate": "http_requests_total",
        "Prediction latency per model": "prediction_duration_seconds_bucket",
        "Predictions per model": "model_predictions_total",
        "Active models": "active_models_gauge",
        "Memory": "memory_usage_bytes",
    }
    for title, metric in wanted.items():
        assert title in panels, title
        names = set().union(*(promql_metric_names(t["expr"]) for t in panels[title]["targets"]))
        assert metric in names, (title, names)
    latency = [t["expr"] for t in panels["Prediction latency per model"]["targets"]]
    assert all(e.startswith("histogram_quantile(") and "by (model_name, le)" in e for e in latency), latency
    error_rate = panels["Error rate"]["targets"][0]["expr"]
    assert 'status=~"5.."' in error_rate


def test_every_panel_uses_the_provisioned_datasource():
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    for panel in dashboard()["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap():
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_every_query_is_scoped_to_the_modelserve_job():
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            selectors = target["expr"].count("{")
            assert target["expr"].count('job="modelserve"') == selectors, (panel["title"], target["expr"])
