"""Jobs over HTTP with real gunicorn workers: submit, poll, download, cancel, bad input, restart recovery."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

from app import create_app
from app.inference import predict_rows
from app.services import services
from tests.conftest import app_config
from tests.factories import iris, penguins, penguins_model, write_iris_set, write_penguins_pipeline
from tests.helpers import GunicornServer, assert_error
from tests.jobs.conftest import write_iris_csv, write_slow_model

pytestmark = pytest.mark.integration
SUBMIT = "/api/v1/predict-async"


def server_config(root: Path, **jobs) -> dict:
    model_dir = write_iris_set(root / "models")
    write_slow_model(model_dir, delay=0.1)
    (root / "data").mkdir(exist_ok=True)
    return {
        "models": {"model_directory": str(model_dir)},
        "logging": {"level": "WARNING"},
        "security": {"rate_limit_enabled": False},  # more than 10 submissions a minute
        "jobs": {
            "data_directory": str(root / "data"),
            "output_directory": str(root / "predictions"),
            "poll_interval_ms": 50,
            "lease_seconds": 5,
            **jobs,
        },
    }


def poll(srv: GunicornServer, job_id: str, until, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = srv.get(f"/api/v1/jobs/{job_id}/status").json()
        if until(body):
            return body
        if finished(body):
            break
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not as expected: {body}\n{srv.log()[-3000:]}")


def finished(body: dict) -> bool:
    return body["status"] not in ("queued", "running")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs-http")
    config = server_config(root, chunk_rows=200)
    write_penguins_pipeline(root / "models")
    with GunicornServer(root, config, workers=2) as srv:
        srv.root = root
        yield srv


def test_submit_poll_download_matches_in_process_predictions(server):
    write_iris_csv(server.root / "data" / "batch" / "iris.csv", repeats=10)
    body = {"data_path": "batch/iris.csv", "output_path": "out/iris.csv", "return_probabilities": True}
    submitted = server.post(SUBMIT, json=body)
    assert submitted.status_code == 202, submitted.text
    done = poll(server, submitted.json()["job_id"], finished)
    assert done["status"] == "completed" and done["progress"]["rows_done"] == 1500, done
    result = server.get(done["links"]["result"])
    assert result.status_code == 200 and result.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(result.text)))
    local = create_app(app_config(server.root / "local", server.root / "models"))
    served = services(local).registry.get("iris_classifier")
    X = [row for _ in range(10) for row in iris()[0].tolist()]
    expected, _ = predict_rows(served, X, with_probabilities=True)
    assert len(rows) == 1501 and rows[1][0] == "s1"
    assert [(int(r[1]), r[2], [float(p) for p in r[3:]]) for r in rows[1:]] == [
        (e["prediction"], e["prediction_label"], e["probabilities"]) for e in expected
    ]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_typed_model_scores_a_file_over_http_as_in_process(server, fmt):
    """The penguins Pipeline on the whole data set (strings, NaN cells), one unknown category skipped with its row."""
    X = penguins()[0].copy()
    X.insert(0, "id", [f"p{i}" for i in range(len(X))])
    X = X.astype({"island": object})
    X.loc[5, "island"] = "Atlantis"
    path = server.root / "data" / f"penguins.{fmt}"
    X.to_csv(path, index=False) if fmt == "csv" else X.to_parquet(path, index=False)
    body = {
        "model_name": "penguins",
        "data_path": path.name,
        "output_path": f"penguins-{fmt}.csv",
        "return_probabilities": True,
        "on_error": "skip",
        "id_column": "id",
    }
    submitted = server.post(SUBMIT, json=body)
    assert submitted.status_code == 202, submitted.text
    done = poll(server, submitted.json()["job_id"], finished)
    assert done["status"] == "completed" and done["progress"]["rows_failed"] == 1, done
    errors = list(csv.reader(io.StringIO(server.get(done["links"]["result"], params={"errors": "true"}).text)))
    assert errors[1][1:] == [
        "p5",
        "row 6: Feature 'island' must be one of 'Biscoe', 'Dream', 'Torgersen', got 'Atlantis'.",
    ]
    rows = list(csv.reader(io.StringIO(server.get(done["links"]["result"]).text)))[1:]
    keep = [i for i in range(len(X)) if i != 5]
    model = penguins_model("pipeline")
    expected = penguins()[0].iloc[keep]
    assert [r[0] for r in rows] == [f"p{i}" for i in keep]
    assert [r[2] for r in rows] == list(model.predict(expected))
    assert np.allclose([[float(p) for p in r[3:]] for r in rows], model.predict_proba(expected), rtol=0, atol=1e-12)


def test_each_job_runs_once_in_one_worker(server):
    write_iris_csv(server.root / "data" / "small.csv")
    ids = [
        server.post(SUBMIT, json={"data_path": "small.csv", "output_path": f"once{i}.csv"}).json()["job_id"]
        for i in range(4)
    ]
    for job_id in ids:
        done = poll(server, job_id, finished)
        assert done["status"] == "completed" and done["attempts"] == 1
        assert [e["event"] for e in done["events"]] == ["queued", "running", "completed"]
    listed = server.get("/api/v1/jobs", params={"limit": 100}).json()
    assert set(ids) <= {j["job_id"] for j in listed["jobs"]}


def test_cancel_a_running_job_leaves_no_output(server):
    write_iris_csv(server.root / "data" / "slow.csv", repeats=20)  # 15 chunks of 0.1 s
    job = server.post(
        SUBMIT, json={"data_path": "slow.csv", "output_path": "cancelled.csv", "model_name": "slow"}
    ).json()
    running = poll(server, job["job_id"], lambda b: b["status"] == "running" and b["progress"]["rows_done"] > 0)
    assert running["progress"]["rows_total"] == 3000
    cancelled = server.delete(f"/api/v1/jobs/{job['job_id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_error(server.get(f"/api/v1/jobs/{job['job_id']}/result"), 409)
    out = server.root / "predictions"
    deadline = time.monotonic() + 10
    while list(out.glob(".cancelled.csv.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(out.glob(".cancelled.csv.*")) and not (out / "cancelled.csv").exists()
    assert poll(server, job["job_id"], finished)["status"] == "cancelled"


def test_bad_paths_and_bad_files_over_http(server, tmp_path):
    data = server.root / "data"
    write_iris_csv(tmp_path / "secret.csv")
    if not (data / "escape.csv").exists():
        os.symlink(tmp_path / "secret.csv", data / "escape.csv")
    (data / "empty.csv").write_text("")
    (data / "semicolons.csv").write_text("sepal_length;sepal_width;petal_length;petal_width\n1;2;3;4\n")
    (data / "three.csv").write_text("sepal_length,sepal_width,petal_length\n1,2,3\n")
    (data / "words.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n1,2,x,4\n")
    for data_path, status in [
        ("../../etc/passwd.csv", 400),
        ("/etc/passwd.csv", 400),
        ("escape.csv", 400),
        ("nothing.csv", 404),
        ("empty.csv", 422),
        ("semicolons.csv", 422),
        ("three.csv", 422),
    ]:
        assert_error(server.post(SUBMIT, json={"data_path": data_path, "output_path": "bad.csv"}), status)
    assert_error(server.post(SUBMIT, json={"data_path": "empty.csv", "output_path": "../x.csv"}), 400)
    job = server.post(SUBMIT, json={"data_path": "words.csv", "output_path": "words.csv"}).json()
    failed = poll(server, job["job_id"], finished)
    assert failed["status"] == "failed" and failed["error"] == "row 2: column petal_length is not numeric"
    assert not (server.root / "predictions" / "words.csv").exists()


def test_a_restart_mid_job_requeues_it_and_it_completes(tmp_path):
    """SIGTERM hands the job back (or, after a crash, its dead pid or lapsed lease does); the next server runs it."""
    config = server_config(tmp_path, chunk_rows=10)
    write_iris_csv(tmp_path / "data" / "slow.csv")
    with GunicornServer(tmp_path, config, workers=2) as first:
        job = first.post(SUBMIT, json={"data_path": "slow.csv", "output_path": "r.csv", "model_name": "slow"}).json()
        poll(first, job["job_id"], lambda b: b["status"] == "running" and b["progress"]["rows_done"] >= 20)
    with GunicornServer(tmp_path, config, workers=2) as second:
        done = poll(second, job["job_id"], finished)
    assert done["status"] == "completed", done
    assert done["progress"]["rows_done"] == 150, done["events"]
    requeued = [e for e in done["events"] if e["event"] == "requeued"]
    assert requeued and ("shutting down" in requeued[0]["detail"] or "stopped" in requeued[0]["detail"])
    assert (tmp_path / "predictions" / "r.csv").read_text().count("\n") == 151
