"""The Prometheus metrics endpoint and what the requests, predictions and models put into it."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.bad_inputs import ROW
from tests.factories import KNOWN_ROWS, write_custom_model
from tests.helpers import assert_error, captured_json_log

SPEC_FAMILIES = {
    "http_requests_total": "counter",
    "prediction_duration_seconds": "histogram",
    "model_predictions_total": "counter",
    "active_models_gauge": "gauge",
    "memory_usage_bytes": "gauge",
    "cpu_usage_percent": "gauge",
}

BROKEN_MODEL = """
class Broken:
    classes_ = [0, 1]

    def load(self):
        pass

    def predict(self, X):
        raise RuntimeError("the model fell over")
"""


def samples(client, path: str = "/api/v1/metrics") -> dict[tuple[str, frozenset], float]:
    response = client.get(path)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def label_values(found, label: str) -> set[str]:
    return {dict(labels)[label] for _, labels in found if label in dict(labels)}


def test_the_spec_families_are_exposed(client):
    client.post("/api/v1/predict", json={"features": ROW})
    text = client.get("/api/v1/metrics").get_data(as_text=True)
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    for name, kind in SPEC_FAMILIES.items():
        family = name.removesuffix("_total") if kind == "counter" else name
        assert types.get(family) == kind, name
    for extra in ("model_loads", "model_unloads", "rate_limit_rejections", "http_request_duration_seconds"):
        assert f"# TYPE {extra}" in text
    assert "_created" not in text


def test_requests_are_counted_by_route_template(client):
    for row in KNOWN_ROWS.values():
        assert client.post("/api/v1/predict/iris_xgboost", json={"features": row}).status_code == 200
    client.post("/api/v1/predict", json={"features": ROW})
    assert_error(client.post("/api/v1/predict/no_such_model", json={"features": ROW}), 404)
    found = samples(client)
    templated = {"method": "POST", "endpoint": "/api/v1/predict/{model_name}"}
    assert value(found, "http_requests_total", **templated, status="200") == 3
    assert value(found, "http_requests_total", **templated, status="404") == 1
    assert value(found, "http_requests_total", method="POST", endpoint="/api/v1/predict", status="200") == 1
    assert value(found, "http_request_duration_seconds_count", **templated) == 4
    endpoints = label_values(found, "endpoint")
    assert "/api/v1/predict/iris_xgboost" not in endpoints and "/api/v1/predict/no_such_model" not in endpoints


def test_unknown_urls_share_one_label_and_wrong_methods_keep_their_route(client):
    for i in range(5):
        assert_error(client.get(f"/api/v1/random-{i}"), 404)
    assert_error(client.get("/api/v1/predict"), 405)
    assert_error(client.post("/api/v1/predict", data="x", content_type="text/plain"), 415)
    found = samples(client)
    assert value(found, "http_requests_total", method="GET", endpoint="unmatched", status="404") == 5
    assert value(found, "http_requests_total", method="GET", endpoint="/api/v1/predict", status="405") == 1
    assert value(found, "http_requests_total", method="POST", endpoint="/api/v1/predict", status="415") == 1
    assert not any("random" in endpoint for endpoint in label_values(found, "endpoint"))


def test_predictions_count_rows_per_real_model(client):
    client.post("/api/v1/predict", json={"features": ROW, "model_name": "default"})
    client.post("/api/v1/batch-predict", json={"features": list(KNOWN_ROWS.values()), "model_name": "iris_classifier"})
    assert_error(client.post("/api/v1/predict", json={"features": ROW, "model_name": "ghost"}), 404)
    assert_error(client.post("/api/v1/predict", json={"features": [1.0]}), 422)
    found = samples(client)
    assert value(found, "model_predictions_total", model_name="iris_classifier", status="success") == 4
    assert value(found, "prediction_duration_seconds_count", model_name="iris_classifier") == 2
    assert label_values(found, "model_name") <= {"iris_classifier", "iris_xgboost"}


def test_a_failing_model_counts_an_error(make_app, model_dir: Path):
    write_custom_model(model_dir, name="broken", source=BROKEN_MODEL)
    client = make_app().test_client()
    assert_error(client.post("/api/v1/predict/broken", json={"features": ROW}), 500)
    found = samples(client)
    assert value(found, "model_predictions_total", model_name="broken", status="error") == 1
    assert value(found, "prediction_duration_seconds_count", model_name="broken") == 0


def test_model_lifecycle_and_gauges(client):
    client.get("/api/v1/models")
    found = samples(client)
    assert value(found, "model_loads_total", model_name="iris_classifier", status="success") == 1
    assert value(found, "active_models_gauge") == 2
    assert value(found, "memory_usage_bytes") > 10_000_000
    assert value(found, "cpu_usage_percent") >= 0
    assert client.delete("/api/v1/models/iris_xgboost").status_code == 200
    found = samples(client)
    assert value(found, "model_unloads_total", model_name="iris_xgboost", reason="deleted") == 1
    assert value(found, "active_models_gauge") == 1


def test_rate_limit_rejections_are_counted_per_route(make_app):
    client = make_app(security={"rate_limits": {"predict": "1/minute"}}).test_client()
    for expected in (200, 429):
        assert client.post("/api/v1/predict/iris_classifier", json={"features": ROW}).status_code == expected
    found = samples(client)
    assert value(found, "rate_limit_rejections_total", endpoint="/api/v1/predict/{model_name}") == 1


def test_openmetrics_when_asked(client):
    response = client.get("/api/v1/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


def test_metrics_path_is_configurable(make_app):
    client = make_app(monitoring={"metrics_endpoint": "/metrics"}).test_client()
    client.get("/api/v1/models")
    assert value(
        samples(client, "/metrics"), "http_requests_total", method="GET", endpoint="/api/v1/models", status="200"
    )
    assert_error(client.get("/api/v1/metrics"), 404)


def test_metrics_can_be_disabled(make_app):
    client = make_app(monitoring={"enable_metrics": False}).test_client()
    assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200
    assert_error(client.get("/api/v1/metrics"), 404)
    assert client.get("/api/v1/status").get_json()["counts"] is None
    assert "/api/v1/metrics" not in client.get("/openapi.json").get_json()["paths"]


@pytest.fixture
def json_log(app):
    """The JSON lines the application logs while the test runs."""
    with captured_json_log() as lines:
        yield lines


def test_each_prediction_logs_the_spec_line(client, json_log):
    client.get("/api/v1/models")  # models load (and log) first
    response = client.post("/api/v1/predict", json={"features": ROW}, headers={"X-Request-ID": "req-123"})
    assert response.status_code == 200
    [line] = [entry for entry in json_log() if entry["message"] == "Prediction completed"]
    assert line["level"] == "INFO" and line["timestamp"].endswith("Z")
    assert line["model_name"] == "iris_classifier"
    assert line["features_count"] == 4
    assert line["request_id"] == "req-123"
    assert line["user_id"] is None
    assert line["prediction_time"] == pytest.approx(response.get_json()["prediction_time"])


def test_batch_predictions_log_their_rows(client, json_log):
    client.post("/api/v1/batch-predict", json={"features": list(KNOWN_ROWS.values())})
    [line] = [entry for entry in json_log() if entry["message"] == "Prediction completed"]
    assert line["rows"] == 3 and line["features_count"] == 4
