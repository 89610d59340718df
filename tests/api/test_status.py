"""``GET /api/v1/status`` and the OpenAPI document of the system endpoints."""

from __future__ import annotations

import os

from app import __version__
from app.status import MASK, mask_secrets
from tests.bad_inputs import ROW

SYSTEM_ENDPOINTS = {
    "/api/v1/health",
    "/api/v1/health/live",
    "/api/v1/health/ready",
    "/api/v1/status",
    "/api/v1/metrics",
}


def test_status_reports_this_worker(client):
    for _ in range(3):
        assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200
    body = client.get("/api/v1/status").get_json()
    assert body["version"] == __version__ and body["environment"] == "testing"
    assert body["worker_pid"] == os.getpid()
    assert body["workers"] == 4
    assert body["uptime_seconds"] >= 0 and body["started_at"].endswith("Z")
    models = {m["name"]: m for m in body["models"]}
    assert set(models) == {"iris_classifier", "iris_xgboost"}
    assert models["iris_classifier"]["prediction_count"] == 3
    assert body["counts"] == {"requests": 3, "predictions": 3, "prediction_errors": 0}


def test_status_shows_the_effective_config(make_app):
    body = make_app(api={"workers": 7}).test_client().get("/api/v1/status").get_json()
    assert body["workers"] == 7
    assert body["config"]["api"]["workers"] == 7
    assert body["config"]["security"]["api_key_header"] == "X-API-Key"


def test_secrets_are_masked_at_any_depth():
    config = {
        "security": {
            "api_key_header": "X-API-Key",
            "api_keys": ["k1", "k2"],
            "jwt_secret_key": "s3cret",
            "empty_token": "",
        },
        "registry": {"redis_url": "redis://h:6379/0", "redis": {"password": "pw", "Auth_Token": "t"}},
        "list": [{"private_key": "x"}],
    }
    masked = mask_secrets(config)
    assert masked["security"] == {
        "api_key_header": "X-API-Key",
        "api_keys": MASK,
        "jwt_secret_key": MASK,
        "empty_token": "",
    }
    assert masked["registry"] == {"redis_url": "redis://h:6379/0", "redis": {"password": MASK, "Auth_Token": MASK}}
    assert masked["list"] == [{"private_key": MASK}]
    assert config["security"]["jwt_secret_key"] == "s3cret"  # a copy, not the live config


def test_system_endpoints_are_documented(client):
    spec = client.get("/openapi.json").get_json()
    assert SYSTEM_ENDPOINTS <= set(spec["paths"])
    for path in SYSTEM_ENDPOINTS:
        operation = spec["paths"][path]["get"]
        assert operation.get("summary"), path
        assert "200" in operation["responses"], path
    health = spec["paths"]["/api/v1/health"]["get"]["responses"]
    assert {"200", "503"} <= set(health)
    assert "text/plain" in spec["paths"]["/api/v1/metrics"]["get"]["responses"]["200"]["content"]
    assert "HealthSchema" not in spec["components"]["schemas"]
    assert {"Health", "Readiness", "Status"} <= set(spec["components"]["schemas"])
