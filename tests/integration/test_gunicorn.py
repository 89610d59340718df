"""The whole API over HTTP against a real gunicorn with several workers.

One server (3 workers) is shared by the module; tests that change its models
put them back. Requests use fresh connections so that different workers answer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.bad_inputs import BAD_REQUESTS, ROW
from tests.factories import KNOWN_ROWS, write_iris_set, write_penguins_pipeline, write_sklearn_classifier
from tests.helpers import PROJECT_ROOT, GunicornServer, assert_error

pytestmark = pytest.mark.integration

WORKERS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gunicorn")
    model_dir = write_iris_set(root / "models")
    write_penguins_pipeline(model_dir)  # the bad-input table's model fitted on a DataFrame
    write_sklearn_classifier(model_dir, name="custom_model", suffix=".pkl")
    (model_dir / "custom_model.meta.json").write_text('{"auto_load": false}')
    config = {"models": {"model_directory": str(model_dir)}, "logging": {"level": "INFO"}}
    with GunicornServer(root, config, workers=WORKERS) as srv:
        srv.model_dir = model_dir
        yield srv


def answering_pids(server, path: str, wanted: int, attempts: int = 600) -> set[int]:
    """Ask ``path`` (which reports ``worker_pid``) on new connections until ``wanted`` workers answered."""
    pids: set[int] = set()
    for _ in range(attempts):
        response = server.get(path)
        assert response.status_code == 200, response.text
        pids.add(response.json()["worker_pid"])
        if len(pids) >= wanted:
            break
    return pids


def test_first_curl_of_the_spec(server):
    response = server.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2], "model_name": "default"})
    assert response.status_code == 200
    body = response.json()
    assert body["prediction"] == 0 and body["prediction_label"] == "setosa" and body["model_name"] == "default"
    assert len(body["probabilities"]) == 3 and body["timestamp"].endswith("Z")
    assert response.headers["X-Request-ID"]


def test_server_runs_the_configured_workers(server):
    assert len(server.worker_pids()) == WORKERS


def test_every_endpoint(server):
    assert server.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).json()["prediction_label"] == "setosa"
    batch = server.post("/api/v1/batch-predict", json={"features": list(KNOWN_ROWS.values())}).json()
    assert [p["prediction_label"] for p in batch["predictions"]] == list(KNOWN_ROWS)
    assert [m["name"] for m in server.get("/api/v1/models").json()["models"]] == [
        "iris_classifier",
        "iris_xgboost",
        "penguins",
    ]
    assert server.get("/api/v1/models/iris_classifier/info").json()["n_features"] == 4
    assert {a["name"] for a in server.get("/api/v1/adapters").json()["adapters"]} >= {"sklearn", "xgboost", "custom"}
    assert "/api/v1/predict" in server.get("/openapi.json").json()["paths"]
    assert server.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "contains"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_over_http(server, method, path, body, content_type, status, contains):
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.request(method, server.url + path, data=body, headers=headers, timeout=30)
    assert_error(response, status, contains=contains or None)
    assert server.post("/api/v1/predict", json={"features": ROW}).status_code == 200


def test_body_over_max_request_size_is_413(server):
    body = b'{"features": [' + b"1.0, " * (11 * 1024 * 1024 // 5) + b"1.0]}"
    assert_error(server.post("/api/v1/predict", data=body, headers={"Content-Type": "application/json"}), 413)
    assert server.post("/api/v1/predict", json={"features": ROW}).status_code == 200


def test_a_load_is_served_by_every_worker_and_a_delete_by_none(server):
    load = server.post("/api/v1/models/load", json={"model_name": "custom_model", "model_path": "custom_model.pkl"})
    assert load.status_code == 200, load.text
    try:
        for _ in range(200):
            response = server.post("/api/v1/predict/custom_model", json={"features": ROW})
            assert response.status_code == 200, response.text
        pids = answering_pids(server, "/api/v1/models/custom_model/info", wanted=2)
        assert len(pids) >= 2, f"only worker {pids} answered"
    finally:
        assert server.delete("/api/v1/models/custom_model").status_code == 200
    for _ in range(200):
        assert_error(server.post("/api/v1/predict/custom_model", json={"features": ROW}), 404)
    assert "custom_model" not in [m["name"] for m in server.get("/api/v1/models").json()["models"]]


def test_replacing_a_model_switches_every_worker(server):
    write_sklearn_classifier(server.model_dir, name="relabelled", suffix=".joblib")
    (server.model_dir / "relabelled.meta.json").write_text('{"labels": ["a", "b", "c"], "auto_load": false}')
    body = {"model_name": "iris_xgboost", "model_path": "relabelled.joblib"}
    assert server.post("/api/v1/models/load", json=body).status_code == 200
    try:
        for _ in range(100):
            answer = server.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).json()
            assert answer["prediction_label"] == "a", answer
    finally:
        restore = {"model_name": "iris_xgboost", "model_path": "iris_xgboost.json"}
        assert server.post("/api/v1/models/load", json=restore).status_code == 200
    assert server.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).json()["prediction_label"] == "setosa"


def test_request_id_is_echoed_and_logged(server):
    response = server.post("/api/v1/predict", json={"features": "bad"}, headers={"X-Request-ID": "trace-42"})
    assert response.headers["X-Request-ID"] == "trace-42" and response.json()["request_id"] == "trace-42"
    assert '"request_id":"trace-42"' in server.log().replace(" ", "")


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        pytest.param(
            "api:\n  port: 0\n",
            "api.port: Must be greater than or equal to 1 and less than or equal to 65535. (from {config})\n",
            id="bad-config",
        ),
        pytest.param(
            "environment: production\n",
            "security: production needs authentication",
            id="production-without-authentication",
        ),
    ],
)
def test_invalid_config_stops_gunicorn_with_one_line(tmp_path: Path, config_text: str, expected: str):
    """gunicorn.conf.py refuses to start (exit 2) with one line naming the problem (and, where known, the file)."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
        cwd=PROJECT_ROOT,
        env={"MODELSERVE_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"modelserve: invalid configuration: {expected.format(config=config)}" in done.stderr


def test_models_loaded_through_the_api_survive_a_restart(tmp_path: Path):
    model_dir = write_iris_set(tmp_path / "models")
    write_sklearn_classifier(model_dir, name="extra", suffix=".pkl")
    (model_dir / "extra.meta.json").write_text('{"auto_load": false}')
    config = {"models": {"model_directory": str(model_dir)}}
    with GunicornServer(tmp_path, config, workers=2) as first:
        assert first.post("/api/v1/models/load", json={"model_name": "kept", "model_path": "extra.pkl"}).ok
        assert first.delete("/api/v1/models/iris_xgboost").ok
    with GunicornServer(tmp_path, config, workers=2) as second:
        names = [m["name"] for m in second.get("/api/v1/models").json()["models"]]
        assert "kept" in names
        assert "iris_xgboost" not in names  # unloaded through the API: auto-loading does not bring it back
        assert second.post("/api/v1/predict/kept", json={"features": ROW}).json()["prediction_label"] == "0"


def test_each_worker_computes_with_one_thread(server):
    """runtime.compute_threads (1): every BLAS and OpenMP pool in every worker, as threadpoolctl sees it."""
    seen: dict[int, list[dict]] = {}
    for _ in range(600):
        assert server.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).status_code == 200
        status = server.get("/api/v1/status").json()
        seen[status["worker_pid"]] = status["compute_threads"]
        if len(seen) == WORKERS:
            break
    assert len(seen) == WORKERS
    for pools in seen.values():
        apis = {pool["user_api"] for pool in pools}
        assert {"blas", "openmp"} <= apis, pools  # numpy's BLAS; XGBoost's and scikit-learn's OpenMP
        assert all(pool["num_threads"] == 1 for pool in pools), pools
