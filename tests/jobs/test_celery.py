"""The Celery backend for real: a worker process against the Redis on 127.0.0.1 runs jobs submitted over HTTP,
and a job whose worker is killed mid-run (SIGKILL) is re-run by another worker, not lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT, GunicornServer, stop_process_group
from tests.jobs.conftest import write_iris_csv
from tests.jobs.test_gunicorn_jobs import SUBMIT, finished, poll, server_config

pytestmark = pytest.mark.integration


class CeleryWorker:
    """``celery -A app.jobs.celery_app worker --concurrency 1`` in its own process group, logging to a file."""

    def __init__(self, config_file: Path, log_path: Path, name: str):
        self.config_file, self.log_path, self.name = config_file, log_path, name

    def __enter__(self) -> CeleryWorker:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "app.jobs.celery_app",
                "worker",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{self.name}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "MODELSERVE_CONFIG": str(self.config_file)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            stop_process_group(self.process, timeout=20)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def celery_setup(tmp_path, redis_url, redis_prefix):
    queue = f"{redis_prefix}-queue"
    config = server_config(
        tmp_path,
        chunk_rows=10,
        backend="celery",
        store="redis",
        broker_url=redis_url,
        queue=queue,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        lease_seconds=3,
    )
    yield tmp_path, config
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(queue, f"_kombu.binding.{queue}")
    for tag, payload in client.hgetall("unacked").items():  # deliveries our killed worker never acknowledged
        if queue.encode() in payload:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.close()


def owner_pid(job: dict) -> int:
    running = [e for e in job["events"] if e["event"] == "running"][-1]
    return int(running["detail"].split(" by ")[1].split(":")[1])


def test_a_celery_worker_runs_the_job_submitted_over_http(celery_setup):
    root, config = celery_setup
    write_iris_csv(root / "data" / "iris.csv", repeats=2)
    with (
        GunicornServer(root, config, workers=2) as server,
        CeleryWorker(server.config_file, root / "worker1.log", f"w1-{uuid.uuid4().hex[:6]}") as worker,
    ):
        job = server.post(SUBMIT, json={"data_path": "iris.csv", "output_path": "c.csv"}).json()
        assert job["backend"] == "celery"
        done = poll(server, job["job_id"], finished)
        assert done["status"] == "completed", (done, worker.log()[-3000:])
        assert done["progress"]["rows_done"] == 300 and done["attempts"] == 1
        assert owner_pid(done) not in server.worker_pids() | {server.process.pid}
        result = server.get(done["links"]["result"])
        assert result.status_code == 200 and result.text.count("\n") == 301


def test_a_job_whose_worker_is_killed_is_rerun_by_another(celery_setup):
    root, config = celery_setup
    write_iris_csv(root / "data" / "slow.csv", repeats=2)  # 30 chunks of 0.1 s
    marker = root / "models" / "slow_started"
    with GunicornServer(root, config, workers=1) as server:
        with CeleryWorker(server.config_file, root / "worker1.log", f"w1-{uuid.uuid4().hex[:6]}") as first:
            job = server.post(SUBMIT, json={"data_path": "slow.csv", "output_path": "k.csv", "model_name": "slow"})
            job_id = job.json()["job_id"]
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert time.monotonic() < deadline, first.log()[-3000:]
                time.sleep(0.05)
            assert int(marker.read_text()) != server.process.pid
            first.kill()  # the whole worker, main process and pool child, SIGKILL
        # Answered at once even if the killed worker held the job store's lock. Running, or already
        # re-queued: the server's sweeper polls every 50 ms and sees the dead pid.
        status = server.get(f"/api/v1/jobs/{job_id}/status")
        assert status.status_code == 200, (status.text, server.log()[-4000:])
        assert status.json()["status"] in ("running", "queued"), status.json()
        with CeleryWorker(server.config_file, root / "worker2.log", f"w2-{uuid.uuid4().hex[:6]}") as second:
            done = poll(server, job_id, finished, timeout=90)
            assert done["status"] == "completed", (done, second.log()[-3000:])
    assert done["attempts"] == 2 and done["progress"]["rows_done"] == 300
    requeued = [e for e in done["events"] if e["event"] == "requeued"]
    assert requeued and "stopped" in requeued[0]["detail"]
    assert (root / "predictions" / "k.csv").read_text().count("\n") == 301
