"""The ``jobs`` configuration section (validated with the rest of the configuration)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


def _int(default: int, lo: int, hi: int) -> ma.fields.Integer:
    return ma.fields.Integer(strict=True, load_default=default, validate=validate.Range(min=lo, max=hi))


def _str(default: str) -> ma.fields.String:
    return ma.fields.String(load_default=default, validate=validate.Length(min=1))


class JobsSection(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    #: embedded: a background executor in each server worker; celery: Celery workers run the jobs.
    backend = ma.fields.String(load_default="embedded", validate=validate.OneOf(["embedded", "celery"]))
    #: Where job records live: SQLite under registry.state_directory, or Redis (redis_url, redis_prefix).
    store = ma.fields.String(load_default="sqlite", validate=validate.OneOf(["sqlite", "redis"]))
    data_directory = _str("data")
    output_directory = _str("predictions")
    chunk_rows = _int(50_000, 1, 10_000_000)
    #: Jobs running at once, across all the workers that share the job store (embedded backend).
    concurrency = _int(1, 1, 64)
    #: Finished jobs, their outputs and error files are deleted this long after they end (0: kept).
    retention_hours = ma.fields.Float(load_default=168.0, validate=validate.Range(min=0, max=24 * 3650))
    #: A running job's owner renews its lease; a job whose lease lapsed is re-queued (or failed).
    lease_seconds = _int(30, 1, 3600)
    #: Attempts before a job whose runner keeps dying is marked failed.
    max_attempts = _int(3, 1, 100)
    #: How often idle executors look for queued jobs, stale leases and expired jobs.
    poll_interval_ms = _int(500, 10, 60_000)
    broker_url = _str("redis://127.0.0.1:6379/1")
    queue = ma.fields.String(load_default="modelserve-jobs", validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,128}$"))
    redis_url = _str("redis://127.0.0.1:6379/0")
    redis_prefix = _str("modelserve")
