"""A worker killed mid-load (SIGKILL) costs at most its in-flight requests.

Clients send predictions without pause while one of three workers is killed. gunicorn starts a
replacement, which serves the same models at the same version: version 2 of the default model,
loaded through the API, not the file the model directory would auto-load.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import requests

from tests.chaos.background_clients import BackgroundClients
from tests.factories import write_sklearn_classifier
from tests.helpers import GunicornServer, poll_until

pytestmark = pytest.mark.integration

WORKERS = 3
CLIENTS = 4
ROW = [5.1, 3.5, 1.4, 0.2]


class SteadyLoad(BackgroundClients):
    """``CLIENTS`` threads, each on its own keep-alive session, predicting until stopped."""

    join_timeout = 30.0

    def __init__(self, url: str):
        super().__init__([()] * CLIENTS)
        self.url = url
        self.labels: Counter[str] = Counter()

    def _client(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.post(self.url + "/api/v1/predict", json={"features": ROW}, timeout=10)
                    outcome = str(response.status_code)
                    label = response.json().get("prediction_label") if response.ok else None
                except requests.RequestException as exc:
                    outcome, label = type(exc).__name__, None
                with self._lock:
                    self.outcomes[outcome] += 1
                    if label is not None:
                        self.labels[label] += 1

    def failed(self) -> int:
        with self._lock:
            return sum(self.outcomes.values()) - self.outcomes["200"]


def test_a_killed_worker_costs_at_most_its_in_flight_requests(tmp_path, iris_models):
    write_sklearn_classifier(iris_models, name="relabelled", labels=["a", "b", "c"], auto_load=False)
    config = {"models": {"model_directory": str(iris_models)}, "logging": {"access_log": False}}
    with GunicornServer(tmp_path, config, workers=WORKERS) as server:
        load = {"model_name": "iris_classifier", "model_path": "relabelled.joblib"}
        assert server.post("/api/v1/models/load", json=load).status_code == 200
        before = server.get("/api/v1/models/iris_classifier/info").json()
        assert before["version"] == 2 and before["labels"] == ["a", "b", "c"]

        with SteadyLoad(server.url) as clients:
            poll_until(lambda: clients.total() >= 200, "200 predictions before the kill", timeout=60)
            workers = server.worker_pids()
            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            killed_at, at_kill = time.monotonic(), clients.total()
            replacement = poll_until(
                lambda: _replacement(server, workers), "gunicorn to replace the killed worker", timeout=60
            )
            info = poll_until(lambda: _answer_from(server, replacement), "the new worker to answer", timeout=60)
            recovered = time.monotonic() - killed_at
            poll_until(lambda: clients.total() >= at_kill + 400, "400 predictions after the kill", timeout=120)
        failed, total = clients.failed(), clients.total()

    print(
        f"\nkilled worker: {failed} of {total} predictions failed {dict(clients.outcomes)}; "
        f"the replacement answered {recovered:.2f} s after SIGKILL"
    )
    assert failed <= CLIENTS, f"{failed} failed: more than the {CLIENTS} that can be in flight ({clients.outcomes})"
    assert set(clients.labels) == {"a"}, clients.labels  # version 2 throughout, on every worker
    assert (info["version"], info["sha256"], info["labels"]) == (before["version"], before["sha256"], before["labels"])


def _replacement(server: GunicornServer, before: set[int]) -> int | None:
    """The pid of the worker gunicorn started since ``before``, once it is running."""
    fresh = server.worker_pids() - before
    return next(iter(fresh)) if len(fresh) == 1 else None


def _answer_from(server: GunicornServer, pid: int) -> dict | None:
    """The default model's info as the worker ``pid`` reports it (new connections reach every worker)."""
    info = server.get("/api/v1/models/iris_classifier/info", headers={"Connection": "close"}).json()
    return info if info["worker_pid"] == pid else None
