"""Health, liveness and readiness through the Flask test client."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import __version__, system_stats
from app.services import services
from app.state_store import StateStoreUnavailable
from tests.factories import write_custom_model
from tests.helpers import assert_error

THRESHOLDS = {
    "memory_degraded_percent": 80,
    "memory_unhealthy_percent": 90,
    "disk_degraded_percent": 80,
    "disk_unhealthy_percent": 90,
}

#: A custom model whose predictions read a file each time: deleting the file breaks it after it loaded.
FLAKY_MODEL = """
import numpy as np


class Flaky:
    classes_ = [0, 1]
    n_features = 4

    def load(self):
        self.path = self.model_dir / "threshold.txt"

    def predict(self, X):
        threshold = float(self.path.read_text())
        return (np.asarray(X)[:, 2] > threshold).astype(int)
"""


def test_health_endpoint(client):
    """The spec's own test."""
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json["status"] == "healthy"


def test_health_has_the_spec_shape(client):
    body = client.get("/api/v1/health").get_json()
    assert set(body) == {"status", "timestamp", "checks", "version"}
    assert body["timestamp"].endswith("Z") and body["version"] == __version__
    checks = body["checks"]
    assert checks["database"] == "healthy"
    assert checks["models"] == {"loaded": 2, "status": "healthy"}
    for name in ("memory", "disk"):
        assert set(checks[name]) == {"used_percent", "status"}
        assert 0 <= checks[name]["used_percent"] <= 100


@pytest.mark.parametrize(
    ("memory", "disk", "status", "code"),
    [
        (50.0, 50.0, "healthy", 200),
        (80.0, 50.0, "healthy", 200),  # at the threshold is not above it
        (85.0, 50.0, "degraded", 200),
        (50.0, 85.0, "degraded", 200),
        (95.0, 50.0, "unhealthy", 503),
        (50.0, 99.5, "unhealthy", 503),
    ],
)
def test_thresholds_decide_the_status(make_app, monkeypatch, memory, disk, status, code):
    monkeypatch.setattr(system_stats, "memory_used_percent", lambda: memory)
    monkeypatch.setattr(system_stats, "disk_used_percent", lambda path: disk)
    response = make_app(health=THRESHOLDS).test_client().get("/api/v1/health")
    assert response.status_code == code
    assert response.get_json()["status"] == status
    assert response.get_json()["checks"]["memory"]["used_percent"] == memory


def test_unreachable_state_store_after_warm_up_is_degraded_and_still_ready(app, monkeypatch):
    """The worker serves the state it read last: degraded, and still in the load balancer."""
    client = app.test_client()
    assert client.get("/api/v1/health/ready").status_code == 200
    monkeypatch.setattr(services(app).registry.store, "ping", lambda: False)
    health = client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.get_json()["checks"]["database"] == "degraded"
    assert health.get_json()["status"] == "degraded"
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 200 and ready.get_json()["checks"]["database"] == "degraded"


def test_a_worker_that_never_read_the_state_is_unhealthy_and_not_ready(app, monkeypatch):
    store = services(app).registry.store

    def unreachable(*args, **kwargs):
        raise StateStoreUnavailable("The registry's shared state (redis at 127.0.0.1:1/0) is unreachable.")

    monkeypatch.setattr(store, "ping", lambda: False)
    for method in ("read", "published_generation", "transact"):
        monkeypatch.setattr(store, method, unreachable)
    client = app.test_client()
    assert_error(client.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}), 503, contains="unreachable")
    health = client.get("/api/v1/health")
    assert health.status_code == 503
    assert health.get_json()["checks"]["database"] == "unhealthy"
    assert_error(client.get("/api/v1/health/ready"), 503, contains="has not read the state yet")
    monkeypatch.undo()  # the store answers again: the next request warms the worker up
    assert client.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200
    assert client.get("/api/v1/health/ready").status_code == 200


def test_no_model_is_unhealthy_and_never_ready(make_app, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    client = make_app(models={"model_directory": str(empty)}).test_client()
    health = client.get("/api/v1/health")
    assert health.status_code == 503
    assert health.get_json()["checks"]["models"] == {"loaded": 0, "status": "unhealthy"}
    body = assert_error(client.get("/api/v1/health/ready"), 503, contains="model 'default'")
    assert body["errors"]["checks"]["models"][0]["status"] == "failed"
    assert client.get("/api/v1/health/live").status_code == 200


def test_only_other_models_is_degraded(make_app):
    client = make_app(models={"default_model": "iris_xgboost"}).test_client()
    assert client.delete("/api/v1/models/iris_xgboost").status_code == 200
    health = client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.get_json()["checks"]["models"] == {"loaded": 1, "status": "degraded"}
    assert_error(client.get("/api/v1/health/ready"), 503, contains="iris_xgboost")


def test_ready_runs_a_trial_prediction_on_the_default_model(make_app, model_dir: Path):
    write_custom_model(model_dir, name="flaky", source=FLAKY_MODEL)
    client = make_app(models={"default_model": "flaky"}).test_client()
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 200, ready.get_json()
    [model] = ready.get_json()["checks"]["models"]
    assert model["requested"] == "default" and model["name"] == "flaky" and model["trial"] == "passed"
    (model_dir / "threshold.txt").unlink()  # loaded and warmed, but it can no longer predict
    body = assert_error(client.get("/api/v1/health/ready"), 503, contains="FileNotFoundError")
    assert body["message"].startswith("Not ready: model 'default'")


def test_ready_checks_required_models(make_app):
    client = make_app(health={"required_models": ["iris_xgboost", "missing_model"]}).test_client()
    body = assert_error(client.get("/api/v1/health/ready"), 503, contains="missing_model")
    statuses = {m["requested"]: m["status"] for m in body["errors"]["checks"]["models"]}
    assert statuses == {"default": "ready", "iris_xgboost": "ready", "missing_model": "failed"}


def test_readiness_probes_are_not_predictions(client):
    for _ in range(3):
        assert client.get("/api/v1/health/ready").status_code == 200
    info = client.get("/api/v1/models/iris_classifier/info").get_json()
    assert info["prediction_count"] == 0
    metrics = client.get("/api/v1/metrics").get_data(as_text=True)
    assert "model_predictions_total{" not in metrics


def test_live_answers_with_the_worker_pid(client):
    import os

    body = client.get("/api/v1/health/live").get_json()
    assert body["status"] == "alive" and body["worker_pid"] == os.getpid()


def test_health_path_is_configurable(make_app):
    client = make_app(monitoring={"health_endpoint": "/healthz"}).test_client()
    assert client.get("/healthz").get_json()["status"] == "healthy"
    assert client.get("/healthz/ready").status_code == 200
    assert client.get("/healthz/live").status_code == 200
    assert_error(client.get("/api/v1/health"), 404)


def test_trial_is_skipped_when_the_feature_count_is_unknown(make_app, model_dir: Path):
    source = FLAKY_MODEL.replace("    n_features = 4\n", "")
    write_custom_model(model_dir, name="anysize", source=source)
    client = make_app(models={"default_model": "anysize"}).test_client()
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["models"][0]["trial"] == "skipped"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/api/v1/health", 405),
        ("DELETE", "/api/v1/health", 405),
        ("PUT", "/api/v1/health/live", 405),
        ("POST", "/api/v1/health/ready", 405),
        ("POST", "/api/v1/status", 405),
        ("POST", "/api/v1/metrics", 405),
        ("GET", "/api/v1/health/nope", 404),
        ("GET", "/api/v1/health/ready/now", 404),
        ("GET", "/api/v1/status/models", 404),
        ("GET", "/api/v1/metrics/extra", 404),
    ],
)
def test_bad_requests_to_system_endpoints(client, method, path, status):
    assert_error(client.open(path, method=method, json={}), status)
