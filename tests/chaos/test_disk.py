"""A full or read-only disk under the state directory or the job output directory.

Each directory is its own small tmpfs (root mounts it; the test skips where mounting is not
allowed). Filling it with a file makes writes fail with ENOSPC for real, and remounting it
read-only makes them fail with EROFS. A model load (which writes the shared state) or a job
submission then gets the one error shape with 507 or 503, health names the path, predictions go
on, and once the file is removed (or the disk is writable again) the same calls succeed, with
the state intact and no restart.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.factories import write_sklearn_classifier
from tests.helpers import GunicornServer, assert_error, poll_until
from tests.jobs.conftest import write_iris_csv

pytestmark = pytest.mark.integration

ROW = [5.1, 3.5, 1.4, 0.2]


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {result.stderr.decode().strip()}")


@contextmanager
def full(path: Path) -> Iterator[None]:
    """``path``'s filesystem filled to the last byte by one file, removed on exit."""
    filler = path / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # stops at ENOSPC
    try:
        yield
    finally:
        filler.unlink()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory, iris_models):
    root = tmp_path_factory.mktemp("disk")
    state, output, data = root / "state", root / "predictions", root / "data"
    mount_tmpfs(state, "16m")
    try:
        mount_tmpfs(output, "2m")
        write_iris_csv(data / "iris.csv")
        write_iris_csv(data / "large.csv", repeats=600)  # 90,000 rows: their predictions outgrow the 2 MiB disk
        write_sklearn_classifier(iris_models, name="relabelled", labels=["a", "b", "c"], auto_load=False)
        config = {
            "models": {"model_directory": str(iris_models)},
            "registry": {"state_directory": str(state)},
            "jobs": {"data_directory": str(data), "output_directory": str(output)},
            "logging": {"access_log": False},
        }
        with GunicornServer(root / "gunicorn", config, workers=2) as srv:
            srv.state, srv.output = state, output
            yield srv
    finally:
        subprocess.run(["umount", "-l", str(output)], capture_output=True)
        subprocess.run(["umount", "-l", str(state)], capture_output=True)


def load(server, path: str):
    return server.post("/api/v1/models/load", json={"model_name": "iris_classifier", "model_path": path})


def storage(server) -> dict:
    body = server.get("/api/v1/health").json()
    return {"status": body["status"], **body["checks"]["storage"]}


def test_a_full_state_directory(server):
    version = server.get("/api/v1/models/iris_classifier/info").json()["version"]
    with full(server.state):
        assert_error(load(server, "relabelled.joblib"), 507, contains="no space left")
        health = storage(server)
        assert health["status"] == "degraded" and health["problems"] == [f"{server.state}: no space left"]
        for _ in range(20):  # predictions go on, from the state as it was
            assert server.post("/api/v1/predict", json={"features": ROW}).json()["prediction_label"] == "setosa"
        assert server.get("/api/v1/models/iris_classifier/info").json()["version"] == version
    assert storage(server) == {"status": "healthy", "problems": []}
    assert load(server, "relabelled.joblib").status_code == 200  # no restart
    assert server.post("/api/v1/predict", json={"features": ROW}).json()["prediction_label"] == "a"
    assert load(server, "iris_classifier.joblib").status_code == 200


def test_a_full_job_output_directory(server):
    job = {"data_path": "iris.csv", "output_path": "out.csv", "overwrite": True}
    with full(server.output):
        assert_error(server.post("/api/v1/predict-async", json=job), 507, contains=str(server.output))
        assert storage(server)["problems"] == [f"{server.output}: no space left"]
    assert server.post("/api/v1/predict-async", json=job).status_code == 202


LARGE_JOB = {"data_path": "large.csv", "output_path": "large.csv", "return_probabilities": True}


def test_a_job_that_fills_the_output_directory_fails_cleanly(server):
    job = server.post("/api/v1/predict-async", json=LARGE_JOB).json()
    done = poll_until(lambda: _finished(server, job["job_id"]), "the job to end", timeout=120)
    assert done["status"] == "failed" and "no space left" in done["error"].lower(), done
    assert str(server.output) in done["error"]
    assert not [p for p in server.output.iterdir() if "large" in p.name], "the partial output is removed"
    assert storage(server) == {"status": "healthy", "problems": []}
    small = {"data_path": "iris.csv", "output_path": "after.csv"}
    again = server.post("/api/v1/predict-async", json=small).json()
    assert poll_until(lambda: _finished(server, again["job_id"]), "the next job", timeout=60)["status"] == "completed"
    (server.output / "after.csv").unlink()


def _finished(server, job_id: str) -> dict | None:
    body = server.get(f"/api/v1/jobs/{job_id}/status").json()
    return body if body["status"] not in ("queued", "running") else None


def test_a_read_only_job_output_directory(server):
    job = {"data_path": "iris.csv", "output_path": "ro.csv", "overwrite": True}
    with read_only(server.output):
        assert_error(server.post("/api/v1/predict-async", json=job), 503, contains="read-only")
        health = storage(server)
        assert health["status"] == "degraded" and health["problems"] == [f"{server.output}: read-only"]
    assert storage(server) == {"status": "healthy", "problems": []}
    assert server.post("/api/v1/predict-async", json=job).status_code == 202
