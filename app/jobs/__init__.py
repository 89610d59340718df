"""Asynchronous batch scoring: ``POST /api/v1/predict-async`` and ``/api/v1/jobs``.

A job scores a CSV or Parquet file from the data directory into a CSV in the
output directory, chunk by chunk, so memory stays bounded whatever the file
size. Job records live in a shared store (SQLite next to the registry's state,
or Redis) so every worker, replica and Celery worker sees the same status.

- :mod:`app.jobs.store`: records, state transitions, leases, idempotency, retention;
- :mod:`app.jobs.scoring`: reading, checking and scoring a file into a CSV;
- :mod:`app.jobs.runner`: one attempt at one job (claimed, scored, finished);
- :mod:`app.jobs.executor`: the embedded background executor and the lease sweeper;
- :mod:`app.jobs.celery_app`: the same runner on Celery workers (``jobs.backend: celery``);
- :mod:`app.jobs.service`: what the HTTP resources call.
"""
