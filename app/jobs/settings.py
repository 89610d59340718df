"""The ``jobs`` configuration section (validated with the rest of the configuration)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate


def _about(description: str) -> dict[str, Any]:
    """A field's ``metadata``: the description the configuration reference (docs/) shows for its key."""
    return {"metadata": {"description": description}}


def _int(default: int, lo: int, hi: int, description: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, load_default=default, validate=validate.Range(min=lo, max=hi), **_about(description)
    )


def _str(default: str, description: str) -> ma.fields.String:
    return ma.fields.String(load_default=default, validate=validate.Length(min=1), **_about(description))


def _one_of(default: str, choices: list[str], description: str) -> ma.fields.String:
    return ma.fields.String(load_default=default, validate=validate.OneOf(choices), **_about(description))


class JobsSection(ma.Schema):
    """Batch scoring of files: ``POST /api/v1/predict-async`` and ``/api/v1/jobs``."""

    class Meta:
        unknown = ma.RAISE

    backend = _one_of(
        "embedded",
        ["embedded", "celery"],
        "embedded: a background executor in each server worker; celery: Celery workers run the jobs.",
    )
    store = _one_of(
        "sqlite",
        ["sqlite", "redis"],
        "Where job records live: SQLite under registry.state_directory, or Redis (redis_url, redis_prefix).",
    )
    data_directory = _str("data", "Jobs read only files inside this directory (data_path).")
    output_directory = _str("predictions", "Jobs write only files inside this directory (output_path).")
    chunk_rows = _int(
        50_000, 1, 10_000_000, "Rows read, scored and written at a time: memory depends on this, not the file."
    )
    concurrency = _int(
        1, 1, 64, "Jobs running at once, across all the workers that share the job store (embedded backend)."
    )
    retention_hours = ma.fields.Float(
        load_default=168.0,
        validate=validate.Range(min=0, max=24 * 3650),
        **_about("Finished jobs, their outputs and error files are deleted this long after they end (0: kept)."),
    )
    lease_seconds = _int(
        30, 1, 3600, "A running job's owner renews its lease; a job whose lease lapsed is re-queued (or failed)."
    )
    max_attempts = _int(3, 1, 100, "Attempts before a job whose runner keeps dying is marked failed.")
    poll_interval_ms = _int(
        500, 10, 60_000, "How often idle executors look for queued jobs, stale leases and expired jobs."
    )
    broker_url = _str("redis://127.0.0.1:6379/1", "The Celery broker of the celery backend (Redis or RabbitMQ).")
    queue = ma.fields.String(
        load_default="modelserve-jobs",
        validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,128}$"),
        **_about("The Celery queue jobs are sent to."),
    )
    redis_url = _str("redis://127.0.0.1:6379/0", "The Redis server of the redis store.")
    redis_prefix = _str("modelserve", "Prefix of the job store's Redis keys.")
