"""``/predict-async`` and ``/jobs`` through the Flask test client: the happy path, every bad input (4xx)."""

from __future__ import annotations

import csv
import io
import os
import sys

import pytest

from app.inference import predict_rows
from app.services import services
from tests.factories import iris
from tests.helpers import assert_error, poll_until
from tests.jobs.conftest import redis_store_lock_holder, write_iris_csv
from tests.jobs.test_executor import queue_job

SUBMIT = "/api/v1/predict-async"


def finished(client, job_id: str) -> dict:
    def poll():
        body = client.get(f"/api/v1/jobs/{job_id}/status").get_json()
        return body if body["status"] not in ("queued", "running") else None

    return poll_until(poll, what=f"job {job_id}")


def download(client, url: str) -> tuple[object, str]:
    """GET a file response and close it (send_file keeps the file open until then)."""
    response = client.get(url)
    try:
        return response, response.get_data(as_text=True)
    finally:
        response.close()


@pytest.fixture
def iris_csv(data_dir):
    return write_iris_csv(data_dir / "batch" / "iris.csv")


def test_submit_poll_download(jobs_client, jobs_app, iris_csv):
    response = jobs_client.post(
        SUBMIT, json={"data_path": "batch/iris.csv", "output_path": "results.csv", "return_probabilities": True}
    )
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["status"] in ("queued", "running") and response.headers["Location"] == job["links"]["status"]
    assert (job["model_name"], job["served_model"], job["model_version"]) == ("default", "iris_classifier", 1)
    done = finished(jobs_client, job["job_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == {"rows_done": 150, "rows_failed": 0, "rows_total": 150, "percent": 100.0}
    assert done["started_at"] and done["finished_at"] and done["expires_at"] and done["error"] is None
    result, text = download(jobs_client, done["links"]["result"])
    assert result.status_code == 200 and result.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(text)))
    served = services(jobs_app).registry.get("iris_classifier")
    expected, _ = predict_rows(served, iris()[0].tolist(), with_probabilities=True)
    assert [(int(r[1]), r[2], [float(p) for p in r[3:]]) for r in rows[1:]] == [
        (e["prediction"], e["prediction_label"], e["probabilities"]) for e in expected
    ]
    assert jobs_client.get(f"/api/v1/jobs/{job['job_id']}").get_json()["status"] == "completed"


def test_idempotency_key_returns_the_same_job(jobs_client, iris_csv):
    body = {"data_path": "batch/iris.csv", "output_path": "once.csv"}
    first = jobs_client.post(SUBMIT, json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    finished(jobs_client, first.get_json()["job_id"])
    again = jobs_client.post(SUBMIT, json=body, headers={"Idempotency-Key": "order-42"})  # output exists now
    assert again.status_code == 200 and again.get_json()["job_id"] == first.get_json()["job_id"]
    assert jobs_client.get("/api/v1/jobs").get_json()["total"] == 1
    other = jobs_client.post(SUBMIT, json={**body, "output_path": "x.csv"}, headers={"Idempotency-Key": "order-42"})
    assert_error(other, 422, contains="different request")
    assert_error(jobs_client.post(SUBMIT, json=body, headers={"Idempotency-Key": "bad key"}), 422)


def test_output_is_not_overwritten_unless_asked(jobs_client, iris_csv, output_dir):
    output_dir.mkdir()
    (output_dir / "taken.csv").write_text("precious\n")
    body = {"data_path": "batch/iris.csv", "output_path": "taken.csv"}
    assert_error(jobs_client.post(SUBMIT, json=body), 409, contains="already exists")
    assert (output_dir / "taken.csv").read_text() == "precious\n"
    job = jobs_client.post(SUBMIT, json={**body, "overwrite": True}).get_json()
    assert finished(jobs_client, job["job_id"])["status"] == "completed"
    assert (output_dir / "taken.csv").read_text().startswith("id,prediction")


def test_bad_rows_fail_the_job_or_go_to_the_error_file(jobs_client, data_dir):
    (data_dir / "bad.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,oops\n"
    )
    failed = finished(
        jobs_client,
        jobs_client.post(SUBMIT, json={"data_path": "bad.csv", "output_path": "f.csv"}).get_json()["job_id"],
    )
    assert failed["status"] == "failed" and failed["error"] == "row 2: column petal_width is not numeric"
    assert_error(jobs_client.get(failed["links"]["result"]), 409, contains="not numeric")
    skipped = finished(
        jobs_client,
        jobs_client.post(SUBMIT, json={"data_path": "bad.csv", "output_path": "s.csv", "on_error": "skip"}).get_json()[
            "job_id"
        ],
    )
    assert skipped["status"] == "completed" and skipped["progress"]["rows_failed"] == 1
    assert skipped["error_file"] == "s.errors.csv"
    _, errors = download(jobs_client, skipped["links"]["result"] + "?errors=true")
    assert "row 2: column petal_width is not numeric" in errors


def test_header_only_file_completes_with_no_rows(jobs_client, data_dir):
    (data_dir / "empty_rows.csv").write_text("sepal_length,sepal_width,petal_length,petal_width\n")
    job = jobs_client.post(SUBMIT, json={"data_path": "empty_rows.csv", "output_path": "e.csv"}).get_json()
    done = finished(jobs_client, job["job_id"])
    assert done["status"] == "completed" and done["progress"]["rows_total"] == 0
    assert download(jobs_client, done["links"]["result"])[1].strip() == "row,prediction,prediction_label"


def test_cancel_a_queued_job_and_the_result_is_refused(jobs_app, jobs_client):
    service = services(jobs_app).jobs
    job = queue_job(service, "never.csv", "never_out.csv")  # the executor is not started: it stays queued
    assert_error(jobs_client.get(f"/api/v1/jobs/{job['job_id']}/result"), 409, contains="queued")
    cancelled = jobs_client.delete(f"/api/v1/jobs/{job['job_id']}")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert_error(jobs_client.delete(f"/api/v1/jobs/{job['job_id']}"), 409, contains="already cancelled")
    assert_error(jobs_client.get(f"/api/v1/jobs/{job['job_id']}/result"), 409, contains="cancelled")


def test_jobs_are_listed_in_pages(jobs_app, jobs_client):
    service = services(jobs_app).jobs
    ids = [queue_job(service, "d.csv", f"p{i}.csv")["job_id"] for i in range(5)]
    page = jobs_client.get("/api/v1/jobs?limit=2&offset=1").get_json()
    assert page["total"] == 5 and (page["limit"], page["offset"]) == (2, 1)
    assert [j["job_id"] for j in page["jobs"]] == [ids[3], ids[2]]
    assert jobs_client.get("/api/v1/jobs?status=completed").get_json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "status", "contains"),
    [
        ({}, 422, "data_path"),
        ({"data_path": "batch/iris.csv"}, 422, "output_path"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "extra": 1}, 422, "extra"),
        ({"data_path": 5, "output_path": "o.csv"}, 422, "data_path"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "model_name": "bad name"}, 422, "model_name"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "on_error": "ignore"}, 422, "on_error"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "overwrite": "yes"}, 422, "overwrite"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "return_probabilities": 1}, 422, "return_prob"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "delimiter": "::"}, 422, "delimiter"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "model_name": "ghost"}, 404, "ghost"),
        ({"data_path": "../secret.csv", "output_path": "o.csv"}, 400, ".."),
        ({"data_path": "/etc/passwd.csv", "output_path": "o.csv"}, 400, "relative"),
        ({"data_path": "batch/iris.json", "output_path": "o.csv"}, 400, ".csv or .parquet"),
        ({"data_path": "missing.csv", "output_path": "o.csv"}, 404, "missing.csv"),
        ({"data_path": "batch", "output_path": "o.csv"}, 400, ".csv or .parquet"),
        ({"data_path": "batch/iris.csv", "output_path": "../o.csv"}, 400, ".."),
        ({"data_path": "batch/iris.csv", "output_path": "/tmp/o.csv"}, 400, "relative"),
        ({"data_path": "batch/iris.csv", "output_path": "o.txt"}, 400, ".csv"),
        ({"data_path": "batch/iris.csv", "output_path": "o.csv", "id_column": "nope"}, 422, "id_column"),
    ],
)
def test_bad_submissions(jobs_client, iris_csv, body, status, contains):
    assert_error(jobs_client.post(SUBMIT, json=body), status, contains=contains)


@pytest.mark.parametrize(
    ("content", "contains"),
    [
        ("", "empty"),
        ("sepal_length,sepal_width,petal_length\n1,2,3\n", "Missing column(s) petal_width"),
        ("sepal_length;sepal_width;petal_length;petal_width\n1;2;3;4\n", "delimiter"),
        ("5.1,3.5,1.4,0.2\n", "header row"),
    ],
)
def test_files_that_cannot_be_scored_are_refused_at_submission(jobs_client, data_dir, content, contains):
    (data_dir / "bad.csv").write_text(content)
    assert_error(
        jobs_client.post(SUBMIT, json={"data_path": "bad.csv", "output_path": "o.csv"}), 422, contains=contains
    )


def test_links_out_of_the_data_directory_are_refused(jobs_client, data_dir, tmp_path):
    secret = write_iris_csv(tmp_path / "secret.csv")
    os.symlink(secret, data_dir / "link.csv")
    assert_error(
        jobs_client.post(SUBMIT, json={"data_path": "link.csv", "output_path": "o.csv"}), 400, contains="symbolic"
    )


def test_parquet_without_pyarrow_is_a_clear_422(jobs_client, data_dir, monkeypatch):
    (data_dir / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    body = {"data_path": "x.parquet", "output_path": "o.csv"}
    assert_error(jobs_client.post(SUBMIT, json=body), 422, contains="pip install")


def test_wrong_content_type_and_malformed_json(jobs_client):
    assert_error(jobs_client.post(SUBMIT, data="data_path=x", content_type="text/plain"), 415)
    assert_error(jobs_client.post(SUBMIT, data="{", content_type="application/json"), 400)


@pytest.mark.parametrize("path", ["/api/v1/jobs/nope/status", "/api/v1/jobs/nope", "/api/v1/jobs/nope/result"])
def test_unknown_jobs_are_404(jobs_client, path):
    assert_error(jobs_client.get(path), 404, contains="nope")


def test_unknown_job_cancel_is_404_and_bad_queries_are_422(jobs_client):
    assert_error(jobs_client.delete("/api/v1/jobs/nope"), 404)
    for query in ("limit=0", "limit=abc", "offset=-1", "status=lost"):
        assert_error(jobs_client.get(f"/api/v1/jobs?{query}"), 422)
    assert_error(jobs_client.get("/api/v1/jobs/nope/result?errors=maybe"), 422)
    assert_error(jobs_client.put("/api/v1/jobs/nope"), 405)


def test_status_answers_while_the_redis_store_is_locked_and_writes_get_503(make_jobs_app, redis_url, redis_prefix):
    """The status of a job whose worker holds (or, SIGKILLed, left) the store lock: 200, never a 500."""
    app = make_jobs_app(store="redis", redis_url=redis_url, redis_prefix=redis_prefix)
    service = services(app).jobs
    service.store.lock_wait_seconds = 0.5
    job = queue_job(service, "in.csv", "out.csv")
    client = app.test_client()
    with redis_store_lock_holder(redis_url, redis_prefix) as holder:
        status = client.get(f"/api/v1/jobs/{job['job_id']}/status")
        assert status.status_code == 200 and status.get_json()["status"] == "queued", status.get_json()
        assert_error(client.delete(f"/api/v1/jobs/{job['job_id']}"), 503, contains="job store")
        holder.kill()
        holder.wait(timeout=30)
        cancelled = client.delete(f"/api/v1/jobs/{job['job_id']}")
        assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
