"""SIGTERM to gunicorn's master (what `docker stop` and Kubernetes send): it stops
taking requests, finishes the ones in flight, and exits within graceful_timeout.

A custom model holds each prediction until the test releases it, so the
requests are provably in flight when the signal arrives and still in flight
when new connections are already refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from tests.deploy.support import poll_until
from tests.factories import write_iris_set
from tests.helpers import GunicornServer

pytestmark = pytest.mark.integration

IN_FLIGHT = 4  # at most the threads of one gthread worker, so all of them run at once
GRACEFUL_TIMEOUT = 20  # api.timeout: gunicorn's graceful_timeout

HELD_MODEL = '''
import time
import uuid
from pathlib import Path

import numpy as np

STARTED = Path({started!r})
RELEASE = Path({release!r})


class HeldModel:
    """Predicts 0; a row starting with 42 announces itself, then waits for the release file (at most 30 s)."""

    classes_ = [0, 1]
    n_features = 4

    def load(self):
        pass

    def predict(self, X):
        X = np.asarray(X)
        if X[0, 0] == 42:
            (STARTED / uuid.uuid4().hex).touch()
            deadline = time.monotonic() + 30
            while not RELEASE.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return np.zeros(len(X), dtype=int)
'''


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    started.mkdir()
    model_dir = write_iris_set(tmp_path / "models")
    (model_dir / "held.py").write_text(HELD_MODEL.format(started=str(started), release=str(release)))
    config = {
        "api": {"timeout": GRACEFUL_TIMEOUT, "worker_class": "gthread", "threads": IN_FLIGHT},
        "models": {"model_directory": str(model_dir)},
        "logging": {"level": "INFO"},
    }
    server = GunicornServer(tmp_path, config, workers=2)
    with server:
        results: dict[int, object] = {}

        def predict(i: int) -> None:
            try:
                results[i] = server.post("/api/v1/predict/held", json={"features": [42, 0, 0, 0]})
            except requests.RequestException as exc:
                results[i] = exc

        threads = [threading.Thread(target=predict, args=(i,)) for i in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        poll_until(lambda: len(list(started.iterdir())) == IN_FLIGHT, f"{IN_FLIGHT} predictions in flight", timeout=30)

        signalled = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)  # the master only, as docker stop does

        def refused() -> bool:
            try:
                requests.get(server.url + "/openapi.json", timeout=2)
            except requests.RequestException:
                return True
            return False

        poll_until(refused, "new connections to be refused after SIGTERM", timeout=15)
        assert all(thread.is_alive() for thread in threads), "the held requests are still in flight"

        release.touch()
        try:
            returncode = server.process.wait(timeout=GRACEFUL_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn did not exit within {GRACEFUL_TIMEOUT + 10}s of SIGTERM:\n{server.log()}")
        exited_after = time.monotonic() - signalled
        for thread in threads:
            thread.join(timeout=10)

    statuses = [getattr(results.get(i), "status_code", results.get(i)) for i in range(IN_FLIGHT)]
    assert statuses == [200] * IN_FLIGHT, f"in-flight requests failed: {statuses}\n{server.log()}"
    assert returncode == 0, server.log()
    assert exited_after < GRACEFUL_TIMEOUT, (
        f"exited {exited_after:.1f}s after SIGTERM: workers were killed, not drained"
    )
