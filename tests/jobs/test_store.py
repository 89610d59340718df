"""The job store's transitions, the same for SQLite and Redis: claims, leases, idempotency, recovery, expiry."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from app.errors import ApiError
from app.jobs.backends import RedisJobStore, SQLiteJobStore
from app.jobs.errors import JobStoreUnavailable
from app.jobs.store import IdempotencyMismatch, JobStore, new_job, new_owner, owner_is_dead
from app.sqlite_files import ThreadConnections
from tests.jobs.conftest import redis_store_lock_holder


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path) -> JobStore:
    if request.param == "sqlite":
        return SQLiteJobStore(tmp_path / "state")
    return RedisJobStore(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))


def job(output: str = "out.csv", fingerprint: str = "f1", **fields):
    return new_job(output_file=output, output_path=output, fingerprint=fingerprint, **fields)


def dead_owner() -> str:
    """An owner id naming a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host, _, rest = new_owner().partition(":")
    return f"{host}:{child.pid}:{rest.split(':')[1]}"


def test_a_job_goes_queued_running_completed(store):
    created, is_new = store.create(job())
    assert is_new and created["status"] == "queued"
    claimed = store.claim_next("w1", 30, max_running=1)
    assert claimed["job_id"] == created["job_id"] and claimed["status"] == "running" and claimed["attempts"] == 1
    assert store.renew(created["job_id"], "w1", 30, rows_done=10, rows_total=20)
    assert store.get(created["job_id"])["rows_done"] == 10
    assert store.finish(created["job_id"], "w1", "completed", rows_done=20)
    done = store.get(created["job_id"])
    assert done["status"] == "completed" and done["finished_at"] and done["owner"] is None
    assert [e["event"] for e in done["events"]] == ["queued", "running", "completed"]


def test_only_one_claimer_gets_each_job_and_concurrency_holds(store):
    for i in range(6):
        store.create(job(f"out{i}.csv"))
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(owner: str) -> None:
        while (got := store.claim_next(owner, 30, max_running=10)) is not None:
            with lock:
                claimed.append(got["job_id"])

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == 6


def test_no_claim_beyond_the_concurrency_limit(store):
    first, _ = store.create(job("a.csv"))
    store.create(job("b.csv"))
    assert store.claim_next("w1", 30, max_running=1)["job_id"] == first["job_id"]
    assert store.claim_next("w2", 30, max_running=1) is None
    assert store.claim_next("w2", 30, max_running=2) is not None


def test_writes_by_a_runner_that_lost_the_job_are_refused(store):
    created, _ = store.create(job())
    store.claim_next("w1", 30, 1)
    assert not store.renew(created["job_id"], "someone-else", 30)
    store.cancel(created["job_id"])
    assert not store.renew(created["job_id"], "w1", 30, rows_done=5)
    assert not store.finish(created["job_id"], "w1", "completed")
    assert store.get(created["job_id"])["status"] == "cancelled"


def test_cancel_queued_and_refuse_finished(store):
    created, _ = store.create(job())
    assert store.cancel(created["job_id"])["status"] == "cancelled"
    with pytest.raises(ApiError) as refused:
        store.cancel(created["job_id"])
    assert refused.value.code == 409
    with pytest.raises(ApiError) as missing:
        store.cancel("nope")
    assert missing.value.code == 404


def test_idempotency_key_returns_the_same_job_and_refuses_another_request(store):
    first, created = store.create(job(), idempotency_key="k-1")
    again, created_again = store.create(job(), idempotency_key="k-1")
    assert created and not created_again and again["job_id"] == first["job_id"]
    assert store.by_key("k-1")["job_id"] == first["job_id"]
    with pytest.raises(IdempotencyMismatch):
        store.create(job(fingerprint="other"), idempotency_key="k-1")
    assert store.page(10, 0)[1] == 1


def test_two_active_jobs_may_not_write_one_output(store):
    store.create(job("same.csv"))
    with pytest.raises(ApiError) as busy:
        store.create(job("same.csv"))
    assert busy.value.code == 409


def test_a_lapsed_lease_is_requeued_then_failed_after_max_attempts(store):
    created, _ = store.create(job())
    job_id = created["job_id"]
    store.claim_next("w1", 30, 1)
    assert store.recover_stale(max_attempts=2) == []  # live lease: not stolen
    later = time.time() + 31
    [(requeued, outcome)] = store.recover_stale(max_attempts=2, now=later)
    assert outcome == "requeued" and requeued["status"] == "queued"
    assert "lease lapsed" in requeued["events"][-1]["detail"]
    store.claim_next("w2", 30, 1)
    [(failed, outcome)] = store.recover_stale(max_attempts=2, now=time.time() + 31)
    assert outcome == "failed"
    final = store.get(job_id)
    assert final["status"] == "failed" and "Interrupted 2 times" in final["error"]


def test_a_dead_local_owner_is_recovered_at_once(store):
    created, _ = store.create(job())
    owner = dead_owner()
    assert owner_is_dead(owner) and not owner_is_dead(new_owner()) and not owner_is_dead("otherhost:1:x")
    store.claim_next(owner, 3600, 1)
    [(requeued, outcome)] = store.recover_stale(max_attempts=3)
    assert outcome == "requeued" and "process exited" in requeued["events"][-1]["detail"]


def test_release_hands_a_running_job_back(store):
    created, _ = store.create(job())
    store.claim_next("w1", 30, 1)
    assert store.release(created["job_id"], "w1", "shutting down")
    back = store.get(created["job_id"])
    assert back["status"] == "queued" and back["events"][-1]["detail"] == "shutting down"
    assert store.claim(created["job_id"], "w2", 30)["attempts"] == 1  # a hand-back is not a failed attempt


def test_claim_by_id_only_takes_queued_jobs(store):
    created, _ = store.create(job())
    assert store.claim(created["job_id"], "w1", 30) is not None
    assert store.claim(created["job_id"], "w2", 30) is None
    assert store.claim("missing", "w2", 30) is None


def test_expiry_deletes_old_finished_jobs_only(store):
    old, _ = store.create(job("old.csv"), idempotency_key="old-key")
    store.claim_next("w", 30, 1)
    store.finish(old["job_id"], "w", "completed")
    fresh, _ = store.create(job("fresh.csv"))
    assert store.purge_finished(before_epoch=time.time() - 3600) == []
    expired = store.purge_finished(before_epoch=time.time() + 1)
    assert [j["job_id"] for j in expired] == [old["job_id"]]
    assert store.page(10, 0)[1] == 1 and store.by_key("old-key") is None
    assert store.get(fresh["job_id"])["status"] == "queued"


def test_pages_are_newest_first_and_filter_by_status(store):
    ids = [store.create(job(f"o{i}.csv"))[0]["job_id"] for i in range(5)]
    store.cancel(ids[0])
    page, total = store.page(2, 1)
    assert total == 5 and [j["job_id"] for j in page] == [ids[3], ids[2]]
    cancelled, count = store.page(10, 0, "cancelled")
    assert count == 1 and cancelled[0]["job_id"] == ids[0]


def test_redis_reads_do_not_wait_for_the_transition_lock(redis_url, redis_prefix):
    """A status read while a worker is inside a transition (holding the lock) answers at once."""
    store = RedisJobStore(redis_url, redis_prefix)
    store.lock_wait_seconds = 0.5  # a store that waited would fail this test fast, not hang
    created, _ = store.create(job(), idempotency_key="k1")
    with redis_store_lock_holder(redis_url, redis_prefix):
        assert store.get(created["job_id"])["status"] == "queued"
        assert store.by_key("k1")["job_id"] == created["job_id"]
        with pytest.raises(JobStoreUnavailable) as refused:  # a 503, not a redis LockError (500)
            store.cancel(created["job_id"])
        assert refused.value.code == 503


def test_a_redis_lock_left_by_a_killed_process_is_broken_at_once(redis_url, redis_prefix):
    """A worker SIGKILLed inside a transition leaves the lock for 30 s; the next one must not wait for it.

    Before, a status read waited 29.9 s for that lock and then raised LockError: an HTTP 500.
    """
    store = RedisJobStore(redis_url, redis_prefix)
    store.lock_wait_seconds = 0.5
    created, _ = store.create(job())
    with redis_store_lock_holder(redis_url, redis_prefix) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert store.get(created["job_id"])["status"] == "queued"
        assert store.cancel(created["job_id"])["status"] == "cancelled"
        assert store.claim_next("w1", 30, max_running=1) is None


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path):
    store = SQLiteJobStore(tmp_path / "state")
    store._connect = ThreadConnections(store.path, timeout=0.2).get  # waiting would fail fast, not hang
    created, _ = store.create(job(), idempotency_key="k1")
    writer = sqlite3.connect(store.path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a transition
        assert store.get(created["job_id"])["status"] == "queued"
        assert store.by_key("k1")["job_id"] == created["job_id"]
        with pytest.raises(JobStoreUnavailable):  # "database is locked": a 503, not a 500
            store.cancel(created["job_id"])
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert store.cancel(created["job_id"])["status"] == "cancelled"
