"""Metrics, health, readiness and logs of a real gunicorn with several workers.

Requests go on fresh connections, so different workers answer; the counts
read back must be exact whichever worker answers the scrape.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.bad_inputs import ROW
from tests.factories import write_iris_set
from tests.helpers import GunicornServer, assert_error

pytestmark = pytest.mark.integration

WORKERS = 4
ROUND = 40
RELAXED = {f"{c}_{lvl}_percent": 100 for c in ("memory", "disk") for lvl in ("degraded", "unhealthy")}


def config_for(model_dir: Path) -> dict:
    return {"models": {"model_directory": str(model_dir)}, "logging": {"level": "INFO"}, "health": RELAXED}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("observability")
    with GunicornServer(root, config_for(write_iris_set(root / "models")), workers=WORKERS) as srv:
        yield srv


def scrape(server) -> dict[tuple[str, frozenset], float]:
    response = server.get("/api/v1/metrics")
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def predict_requests(found) -> float:
    labels = frozenset({"method": "POST", "endpoint": "/api/v1/predict", "status": "200"}.items())
    return found.get(("http_requests_total", labels), 0.0)


def model_predictions(found, model: str = "iris_classifier") -> float:
    return found.get(("model_predictions_total", frozenset({"model_name": model, "status": "success"}.items())), 0.0)


def send_predictions(server, count: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(
            pool.map(lambda _: server.post("/api/v1/predict", json={"features": ROW}).status_code, range(count))
        )
    assert codes == [200] * count


def predictions_per_worker(server, attempts: int = 200) -> dict[int, int]:
    """Ask /status on new connections until two workers report predictions (or attempts run out)."""
    seen: dict[int, int] = {}
    for _ in range(attempts):
        body = server.get("/api/v1/status").json()
        seen[body["worker_pid"]] = sum(m["prediction_count"] for m in body["models"])
        if sum(1 for count in seen.values() if count) >= 2:
            break
    return seen


def multiprocess_dir(server) -> Path:
    match = re.search(r"Prometheus multiprocess directory: ([^\"\s]+)", server.log())
    assert match, server.log()
    return Path(match.group(1))


def test_counts_are_exact_across_workers(server):
    before = scrape(server)
    sent = 0
    for _ in range(10):  # until at least two workers have predicted
        send_predictions(server, ROUND)
        sent += ROUND
        per_worker = predictions_per_worker(server)
        if sum(1 for count in per_worker.values() if count) >= 2:
            break
    assert sum(1 for count in per_worker.values() if count) >= 2, per_worker

    answered = set()
    for _ in range(300):  # until the counts were read from three workers
        found = scrape(server)
        assert predict_requests(found) - predict_requests(before) == sent
        assert model_predictions(found) - model_predictions(before) == sent
        status = server.get("/api/v1/status").json()
        answered.add(status["worker_pid"])
        assert status["counts"]["predictions"] == model_predictions(found)
        if len(answered) >= 3:
            break
    assert len(answered) >= 2, "the counts were read from one worker only"
    duration = found[("prediction_duration_seconds_count", frozenset({"model_name": "iris_classifier"}.items()))]
    assert duration == model_predictions(found)


def test_gauges_describe_the_whole_server(server):
    found = scrape(server)
    assert found[("active_models_gauge", frozenset())] == 2
    master_and_workers = sum(
        psutil.Process(pid).memory_info().rss for pid in (server.process.pid, *server.worker_pids())
    )
    assert found[("memory_usage_bytes", frozenset())] == pytest.approx(master_and_workers, rel=0.2)
    assert found[("cpu_usage_percent", frozenset())] >= 0


def test_a_dead_worker_keeps_its_counts_and_drops_its_gauges(server):
    send_predictions(server, 10)
    before = scrape(server)
    directory = multiprocess_dir(server)
    victim = min(server.worker_pids())
    assert (directory / f"counter_{victim}.db").exists() or (directory / f"histogram_{victim}.db").exists()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in server.worker_pids() or len(server.worker_pids()) < WORKERS:  # gunicorn replaces it
        assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
        time.sleep(0.05)
    assert not list(directory.glob(f"gauge_live*_{victim}.db"))  # child_exit marked it dead
    after = scrape(server)
    assert model_predictions(after) == model_predictions(before)
    assert predict_requests(after) == predict_requests(before)


def test_ready_and_live_on_every_worker(server):
    pids = set()
    for _ in range(100):
        assert server.get("/api/v1/health/ready").json()["status"] == "ready"
        pids.add(server.get("/api/v1/health/live").json()["worker_pid"])
        if len(pids) >= 2:
            break
    assert len(pids) >= 2
    health = server.get("/api/v1/health").json()
    assert health["status"] == "healthy" and health["checks"]["models"]["loaded"] >= 1


def test_predictions_log_the_spec_line(server):
    response = server.post("/api/v1/predict", json={"features": ROW}, headers={"X-Request-ID": "obs-77"})
    assert response.status_code == 200
    lines = [json.loads(line) for line in server.log().splitlines() if '"obs-77"' in line]
    [completed] = [line for line in lines if line["message"] == "Prediction completed"]
    assert completed["model_name"] == "iris_classifier" and completed["features_count"] == 4
    assert completed["user_id"] is None and completed["prediction_time"] > 0
    # gunicorn writes the access line after the response has left: wait for it, boundedly
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in server.log().splitlines() if '"obs-77"' in line]
        access = [line for line in lines if line.get("logger") == "gunicorn.access"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert access and access[0]["status"] == 200


def test_without_a_model_the_server_lives_but_is_not_ready(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with GunicornServer(tmp_path, config_for(empty), workers=2) as srv:
        for _ in range(10):
            assert srv.get("/api/v1/health/live").status_code == 200
            assert_error(srv.get("/api/v1/health/ready"), 503, contains="iris_classifier")
            assert srv.get("/api/v1/health").status_code == 503


def test_a_restart_starts_the_counts_afresh_and_removes_its_directory(tmp_path: Path):
    model_dir = write_iris_set(tmp_path / "models")
    operator_dir = tmp_path / "prom"
    with GunicornServer(
        tmp_path, config_for(model_dir), workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(operator_dir)}
    ) as first:
        send_predictions(first, 5)
        assert model_predictions(scrape(first)) == 5
    assert list(operator_dir.glob("*.db")), "the operator's directory keeps the samples until the next start"
    with GunicornServer(
        tmp_path, config_for(model_dir), workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(operator_dir)}
    ) as second:
        assert model_predictions(scrape(second)) == 0
        send_predictions(second, 2)
        assert model_predictions(scrape(second)) == 2
    with GunicornServer(tmp_path, config_for(model_dir), workers=2) as third:
        own_dir = multiprocess_dir(third)
        assert own_dir.is_dir() and own_dir != operator_dir
    assert not own_dir.exists()


def test_metrics_off_serves_no_metrics(tmp_path: Path):
    config = {**config_for(write_iris_set(tmp_path / "models")), "monitoring": {"enable_metrics": False}}
    with GunicornServer(tmp_path, config, workers=2) as srv:
        assert srv.post("/api/v1/predict", json={"features": ROW}).status_code == 200
        assert_error(srv.get("/api/v1/metrics"), 404)
        assert "Prometheus multiprocess directory" not in srv.log()


def test_unknown_urls_do_not_create_series(server):
    for i in range(20):
        requests.get(f"{server.url}/api/v1/junk-{i}", timeout=30)
        server.post(f"/api/v1/predict/junk_{i}", json={"features": ROW})
    found = scrape(server)
    labels = {value for _, pairs in found for name, value in pairs if name in ("endpoint", "model_name")}
    assert not any("junk" in value for value in labels)
