"""Every metric name the Grafana dashboard and the alert rules query exists in
what a running modelserve exposes at /api/v1/metrics."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.support import alert_rules, dashboard_expressions, promql_metric_names
from tests.factories import write_iris_set, write_sklearn_classifier
from tests.helpers import GunicornServer

#: Series Prometheus makes itself for every target, not modelserve.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (endpoint) (rate(http_requests_total{job="m", status=~"5.."}[$__rate_interval]))',
            {"http_requests_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (model_name, le) (rate(prediction_duration_seconds_bucket[5m]))) > 0.5",
            {"prediction_duration_seconds_bucket"},
        ),
        ("a_total / ignoring(x) group_left b_total offset 5m or vector(0)", {"a_total", "b_total"}),
        ('up{job="modelserve"} == 0', {"up"}),
        ('max by (instance) (active_models_gauge{name="sum(x)"}) * 1e3', {"active_models_gauge"}),
    ],
)
def test_metric_name_extraction(expr, names):
    assert promql_metric_names(expr) == names


def used_metric_names() -> set[str]:
    exprs = dashboard_expressions() + [rule["expr"] for rule in alert_rules()]
    return set().union(*map(promql_metric_names, exprs)) - PROMETHEUS_OWN


@pytest.mark.integration
def test_every_dashboard_and_alert_metric_is_exposed(tmp_path):
    model_dir = write_iris_set(tmp_path / "models")
    write_sklearn_classifier(model_dir, name="spare", suffix=".joblib")
    (model_dir / "spare.meta.json").write_text('{"auto_load": false}')
    (model_dir / "broken.joblib").write_bytes(b"not a model")
    config = {"models": {"model_directory": str(model_dir)}, "logging": {"level": "WARNING"}}
    with GunicornServer(tmp_path, config, workers=2) as server:
        # Give every labelled family a series: predictions, errors, a load, a failed load, an unload.
        for name in ("iris_classifier", "iris_xgboost"):
            assert server.post(f"/api/v1/predict/{name}", json={"features": [5.1, 3.5, 1.4, 0.2]}).ok
        assert server.post("/api/v1/predict", json={"features": [1]}).status_code == 422
        assert (
            server.post("/api/v1/models/load", json={"model_name": "broken", "model_path": "broken.joblib"}).status_code
            == 422
        )
        # An unload is counted by the worker that held the model, so load and delete go over one
        # keep-alive connection (one worker); on two connections the delete may land on a worker
        # that never loaded "spare", and nothing is unloaded until the other one next syncs.
        with requests.Session() as one_worker:
            loaded = one_worker.post(
                server.url + "/api/v1/models/load",
                json={"model_name": "spare", "model_path": "spare.joblib"},
                timeout=30,
            )
            assert loaded.ok, loaded.text
            assert one_worker.delete(server.url + "/api/v1/models/spare", timeout=30).ok
        response = server.get("/api/v1/metrics")
    assert response.status_code == 200, response.text[:500]
    exposed = {sample.name for family in text_string_to_metric_families(response.text) for sample in family.samples}
    missing = sorted(used_metric_names() - exposed)
    assert not missing, f"queried by the dashboard or alerts but not exposed: {missing}\nexposed: {sorted(exposed)}"
