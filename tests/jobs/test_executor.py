"""The embedded executor: runs queued jobs, recovers jobs whose runner died, hands jobs back on shutdown."""

from __future__ import annotations

import time

from app.jobs.store import new_job
from app.services import services
from tests.helpers import poll_until
from tests.jobs.conftest import write_iris_csv, write_slow_model
from tests.jobs.test_store import dead_owner


def status_of(service, job_id: str) -> str:
    return service.store.get(job_id)["status"]


def queue_job(service, data: str, output: str, model: str = "iris_classifier", **options):
    job = new_job(
        data_path=data,
        output_path=output,
        model_name=model,
        served_model=model,
        model_version=1,
        format="csv",
        output_file=output,
        fingerprint="x",
        return_probabilities=False,
        on_error="fail",
        overwrite=False,
        id_column=None,
        delimiter=",",
        backend="embedded",
        **options,
    )
    return service.store.create(job)[0]


def test_a_job_left_running_by_a_dead_process_is_rerun(make_jobs_app, data_dir, output_dir):
    write_iris_csv(data_dir / "iris.csv")
    app = make_jobs_app()
    service = services(app).jobs
    job = queue_job(service, "iris.csv", "out.csv")
    assert service.store.claim_next(dead_owner(), 3600, 1)["status"] == "running"
    service.executor.start()
    poll_until(lambda: status_of(service, job["job_id"]) == "completed", what="the re-run")
    done = service.store.get(job["job_id"])
    assert done["attempts"] == 2 and done["rows_done"] == 150
    assert any(e["event"] == "requeued" and "process exited" in e["detail"] for e in done["events"])
    assert (output_dir / "out.csv").read_text().count("\n") == 151


def test_a_job_that_keeps_dying_is_failed_with_the_reason(make_jobs_app, data_dir):
    write_iris_csv(data_dir / "iris.csv")
    service = services(make_jobs_app(max_attempts=1)).jobs
    job = queue_job(service, "iris.csv", "out.csv")
    service.store.claim_next(dead_owner(), 3600, 1)
    service.executor.tick()
    failed = service.store.get(job["job_id"])
    assert failed["status"] == "failed" and "Interrupted 1 times" in failed["error"]
    assert "process exited" in failed["error"]


def test_shutdown_hands_the_running_job_to_another_worker(make_jobs_app, model_dir, data_dir, output_dir):
    write_slow_model(model_dir, delay=0.05)
    write_iris_csv(data_dir / "iris.csv")
    first = services(make_jobs_app(chunk_rows=10)).jobs
    job = queue_job(first, "iris.csv", "slow.csv", model="slow")
    first.executor.start()
    poll_until(lambda: first.store.get(job["job_id"])["rows_done"] >= 10, what="the first chunks")
    first.executor.stop("worker stopping")
    requeued = first.store.get(job["job_id"])
    assert requeued["status"] == "queued" and "worker stopping" in requeued["events"][-1]["detail"]
    assert first.executor.wait_idle(10)  # the old runner saw it lost the job and stopped
    assert not list(output_dir.glob(".slow.csv.*.tmp")) and not (output_dir / "slow.csv").exists()

    second = services(make_jobs_app(chunk_rows=50)).jobs
    second.executor.start()
    poll_until(lambda: status_of(second, job["job_id"]) == "completed", what="the second worker")
    assert second.store.get(job["job_id"])["attempts"] == 1


def test_concurrency_is_shared_by_every_worker_of_a_store(make_jobs_app, model_dir, data_dir):
    write_slow_model(model_dir, delay=0.02)
    write_iris_csv(data_dir / "iris.csv")
    jobs_services = [services(make_jobs_app(chunk_rows=30)).jobs for _ in range(2)]
    jobs = [queue_job(jobs_services[0], "iris.csv", f"o{i}.csv", model="slow") for i in range(3)]
    for service in jobs_services:
        service.executor.start()
    most = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [status_of(jobs_services[0], j["job_id"]) for j in jobs]
        most = max(most, states.count("running"))
        if states.count("completed") == 3:
            break
        time.sleep(0.01)
    assert states == ["completed"] * 3 and most == 1


def test_finished_jobs_expire_with_their_outputs(make_jobs_app, data_dir, output_dir):
    write_iris_csv(data_dir / "iris.csv")
    service = services(make_jobs_app(retention_hours=1)).jobs
    job = queue_job(service, "iris.csv", "old.csv")
    service.executor.start()
    poll_until(lambda: status_of(service, job["job_id"]) == "completed", what="the job")
    assert (output_dir / "old.csv").exists()
    assert service.expire(now=time.time() + 1800) == []
    [expired] = service.expire(now=time.time() + 3601)
    assert expired["job_id"] == job["job_id"] and not (output_dir / "old.csv").exists()
    assert service.store.page(10, 0)[1] == 0
