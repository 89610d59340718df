"""The spec's locust load test: ``locust -f load_test.py --host=http://localhost:8000``.

A realistic mix of clients of the iris demo (``make serve``): mostly single
predictions, some batches, some model listings, and now and then a batch
job over the spec's demo file, polled until it ends. Every row is random and
valid: each feature within the range the iris data spans. Everything goes to
the default model. ``LOADTEST_API_KEY``, when set, is sent as ``X-API-Key``.

Jobs need the admin role: with a predict-only key, add ``--exclude-tags jobs``.
Headless, with locust's summary: ``make loadtest``; how to read it, and what
the rate limits do to it, is in the documentation (Load testing).
"""

from __future__ import annotations

import os
import random
import time
import uuid

from locust import HttpUser, between, tag, task

API_KEY_ENV = "LOADTEST_API_KEY"
#: Each iris feature's range in the data set, in cm: sepal length, sepal width, petal length, petal width.
IRIS_RANGES = ((4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5))
#: The spec's batch file, which create-demo-models (run by make serve) writes into the jobs' data directory.
JOB_DATA = "batch/large_dataset.csv"
JOB_POLL_SECONDS = 0.5
JOB_POLLS = 120  # a job still unfinished after a minute of polling counts as a failure
JOB_STATUS_NAME = "/api/v1/jobs/[job_id]/status"  # one row in locust's table for all jobs


def iris_row() -> list[float]:
    """Four features, each drawn within its range in the iris data."""
    return [round(random.uniform(low, high), 1) for low, high in IRIS_RANGES]


class IrisClient(HttpUser):
    """One client: a request, a short think, another request."""

    wait_time = between(0.1, 1.0)

    def on_start(self) -> None:
        key = os.environ.get(API_KEY_ENV)
        if key:
            self.client.headers["X-API-Key"] = key
        # Its own output file, overwritten by each of its jobs (one at a time): no 409s between clients.
        self.job_output = f"loadtest-{uuid.uuid4().hex[:12]}.csv"

    @task(16)
    def predict(self) -> None:
        body = {"features": iris_row(), "return_probabilities": random.random() < 0.5}
        self.client.post("/api/v1/predict", json=body)

    @task(3)
    def batch_predict(self) -> None:
        self.client.post("/api/v1/batch-predict", json={"features": [iris_row() for _ in range(random.randint(2, 50))]})

    @task(2)
    def list_models(self) -> None:
        self.client.get("/api/v1/models")

    @tag("jobs")
    @task(1)
    def async_job(self) -> None:
        body = {"data_path": JOB_DATA, "output_path": self.job_output, "overwrite": True}
        submitted = self.client.post("/api/v1/predict-async", json=body)
        if submitted.status_code != 202:
            return  # locust has counted it as a failure
        status_url = f"/api/v1/jobs/{submitted.json()['job_id']}/status"
        for poll in range(1, JOB_POLLS + 1):
            time.sleep(JOB_POLL_SECONDS)  # locust's gevent makes this a pause of this client only
            with self.client.get(status_url, name=JOB_STATUS_NAME, catch_response=True) as answer:
                if not answer.ok:
                    return  # counted as a failure when the block ends
                job = answer.json()
                if job["status"] == "completed":
                    return
                if job["status"] in ("failed", "cancelled"):
                    answer.failure(f"job {job['status']}: {job.get('error')}")
                    return
                if poll == JOB_POLLS:
                    answer.failure(f"job still {job['status']} after {JOB_POLLS * JOB_POLL_SECONDS:g} s")
