"""Storage faults in the one error shape: SQLite's own "full" and "read-only" errors and the
operating system's ENOSPC / EROFS become 507 / 503; any other OSError stays the one 500.

The errors are real ones, made by SQLite and the OS on purpose (a database capped at its page
count, a database opened read-only); tests/chaos/test_disk.py fills and remounts real disks.
"""

from __future__ import annotations

import errno
import sqlite3

import pytest

from app.services import services
from tests.helpers import assert_error

LOAD = {"model_name": "iris_copy", "model_path": "iris_classifier.joblib"}


def sqlite_full() -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    return caught.value


def sqlite_read_only(tmp_path) -> sqlite3.Error:
    path = tmp_path / "ro.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute("INSERT INTO t VALUES (1)")
    return caught.value


@pytest.mark.parametrize(
    ("make_error", "status", "says"),
    [
        (lambda tmp: sqlite_full(), 507, "no space left"),
        (sqlite_read_only, 503, "read-only"),
        (lambda tmp: OSError(errno.ENOSPC, "No space left on device", str(tmp / "state")), 507, "no space left"),
        (lambda tmp: OSError(errno.EROFS, "Read-only file system", str(tmp / "state")), 503, "read-only"),
    ],
    ids=["sqlite-full", "sqlite-read-only", "enospc", "erofs"],
)
def test_a_write_the_disk_refuses_is_507_or_503(app, client, monkeypatch, tmp_path, make_error, status, says):
    error = make_error(tmp_path)

    def refuse(change):
        raise error

    monkeypatch.setattr(services(app).registry.store, "transact", refuse)
    body = assert_error(client.post("/api/v1/models/load", json=LOAD), status, contains=says)
    assert "Traceback" not in body["message"]
    monkeypatch.undo()  # the disk is back: the same request succeeds, no restart
    assert client.post("/api/v1/models/load", json=LOAD).status_code == 200


def test_any_other_os_error_is_the_one_500(app, client, monkeypatch):
    def refuse(change):
        raise PermissionError(errno.EACCES, "Permission denied", "/secret/path")

    monkeypatch.setattr(services(app).registry.store, "transact", refuse)
    body = assert_error(client.post("/api/v1/models/load", json=LOAD), 500)
    assert "/secret/path" not in str(body)


SHARED_STATE_WRITES = [
    ("post", "/api/v1/models/load"),
    ("post", "/api/v1/models/trust"),
    ("delete", "/api/v1/models/{model_name}"),
    ("post", "/api/v1/models/{model_name}/alias"),
    ("post", "/api/v1/models/{model_name}/rollback"),
    ("delete", "/api/v1/aliases/{alias}"),
    ("post", "/api/v1/predict-async"),
    ("delete", "/api/v1/jobs/{job_id}"),
]
SHARED_STATE_READS = [
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{job_id}"),
    ("get", "/api/v1/jobs/{job_id}/status"),
    ("get", "/api/v1/jobs/{job_id}/result"),
]


@pytest.mark.parametrize(("method", "path"), SHARED_STATE_WRITES + SHARED_STATE_READS)
def test_the_openapi_document_declares_the_shared_state_faults(client, method, path):
    responses = client.get("/openapi.json").get_json()["paths"][path][method]["responses"]
    assert "503" in responses
    assert ("507" in responses) == ((method, path) in SHARED_STATE_WRITES)
