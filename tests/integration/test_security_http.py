"""Security over HTTP with real gunicorn: a rate limit that holds across 4 workers (Redis),
credentials checked in every worker, and a malicious pickle refused."""

from __future__ import annotations

import pickle

import pytest
import requests

from app.security.auth import new_api_key
from tests.factories import KNOWN_ROWS, write_iris_set
from tests.helpers import GunicornServer, assert_error, redis_or_skip

pytestmark = pytest.mark.integration
ROW = KNOWN_ROWS["setosa"]


@pytest.fixture
def redis_url():
    url = "redis://127.0.0.1:6379/13"
    client = redis_or_skip(url)
    client.flushdb()
    yield url
    client.flushdb()


def test_the_101st_prediction_in_a_minute_is_refused_whichever_worker_answers(tmp_path, redis_url):
    config = {
        "models": {"model_directory": str(write_iris_set(tmp_path / "models"))},
        "security": {
            "rate_limit_enabled": True,
            "rate_limit_storage": redis_url,
            "rate_limits": {"predict": "100/minute"},
        },
    }
    with GunicornServer(tmp_path, config, workers=4) as server:
        statuses = []
        for _ in range(100):  # a new connection each time: the workers share the answering
            statuses.append(requests.post(server.url + "/api/v1/predict", json={"features": ROW}, timeout=30))
        assert [r.status_code for r in statuses] == [200] * 100
        remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in statuses)
        assert remaining == list(range(100))  # one shared counter, not four
        refused = server.post("/api/v1/predict", json={"features": ROW})
        assert_error(refused, 429)
        assert int(refused.headers["Retry-After"]) > 0


def test_credentials_and_roles_hold_in_every_worker(tmp_path):
    predict_key, predict_sha = new_api_key()
    admin_key, admin_sha = new_api_key()
    config = {
        "environment": "production",
        "models": {"model_directory": str(write_iris_set(tmp_path / "models"))},
        "security": {
            "rate_limit_enabled": False,
            "api_keys": [
                {"name": "scorer", "sha256": predict_sha, "roles": ["predict"]},
                {"name": "ops", "sha256": admin_sha, "roles": ["admin"]},
            ],
        },
    }
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (marker.touch, ())

    (tmp_path / "models" / "evil.pkl").write_bytes(pickle.dumps(Exploit()))
    with GunicornServer(tmp_path, config, workers=2) as server:
        for _ in range(20):
            assert_error(server.post("/api/v1/predict/iris_xgboost", json={"features": ROW}), 401)
            ok = server.post("/api/v1/predict/iris_xgboost", json={"features": ROW}, headers={"X-API-Key": predict_key})
            assert ok.status_code == 200
        load = {"model_name": "evil", "model_path": "evil.pkl"}
        assert_error(server.post("/api/v1/models/load", json=load, headers={"X-API-Key": predict_key}), 403)
        body = assert_error(server.post("/api/v1/models/load", json=load, headers={"X-API-Key": admin_key}), 403)
        assert "not trusted" in body["message"]
        assert server.get("/api/v1/health/live").status_code == 200  # probes need no credentials
        log = server.log()
    assert not marker.exists()
    assert predict_key not in log and admin_key not in log
