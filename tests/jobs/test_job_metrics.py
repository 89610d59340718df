"""Jobs in the operators' view: counts by state in /metrics, queue depth in /status."""

from __future__ import annotations

from app.jobs.store import new_job
from app.services import services


def test_jobs_by_state_and_queue_depth(make_jobs_app):
    app = make_jobs_app()
    service = services(app).jobs
    service.executor.stop("counting, not running")
    for n, status in enumerate(("queued", "queued", "failed")):
        service.store.create(new_job(status=status, model_name="default", output_file=f"out-{n}.csv"))
    client = app.test_client()
    assert service.counts_by_state() == {"queued": 2, "running": 0, "completed": 0, "failed": 1, "cancelled": 0}
    text = client.get("/api/v1/metrics").get_data(as_text=True)
    assert 'jobs{state="queued"} 2.0' in text and 'jobs{state="failed"} 1.0' in text
    status = client.get("/api/v1/status").get_json()
    assert status["jobs"]["queue_depth"] == 2 and status["jobs"]["by_state"]["failed"] == 1
