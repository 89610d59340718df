"""Response bodies of the health, readiness and status endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.api.models.schemas import ModelMemorySchema

CHECK_STATUS = validate.OneOf(["healthy", "degraded", "unhealthy"])


def _status(description: str) -> ma.fields.String:
    return ma.fields.String(required=True, validate=CHECK_STATUS, metadata={"description": description})


class ModelsCheckSchema(ma.Schema):
    loaded = ma.fields.Integer(
        required=True, metadata={"description": "Models held in memory by the worker that answered."}
    )
    status = _status("healthy: the default model serves; degraded: only other models do; unhealthy: none.")


class UsageCheckSchema(ma.Schema):
    used_percent = ma.fields.Float(required=True, metadata={"example": 45.2})
    status = _status("Compared with the health.*_percent thresholds of the configuration.")


class DependencySchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "redis"})
    address = ma.fields.String(required=True, metadata={"example": "redis:6379/0", "description": "Never credentials."})
    used_for = ma.fields.String(
        required=True, metadata={"description": "rate limits, registry or jobs", "example": "rate limits"}
    )
    status = _status("healthy: it answered just now; unhealthy: it did not.")
    error = ma.fields.String(metadata={"description": "Why it did not answer."})
    consequence = ma.fields.String(metadata={"description": "What the server does meanwhile."})


class StorageCheckSchema(ma.Schema):
    status = _status("degraded: a directory the server writes to is full or read-only (predictions still serve).")
    problems = ma.fields.List(
        ma.fields.String(), required=True, metadata={"example": ["/app/var/state: no space left"]}
    )


class HealthChecksSchema(ma.Schema):
    database = _status(
        "The shared state store (which models to serve) answers; degraded: it does not, and this worker serves "
        "the state it read last."
    )
    dependencies = ma.fields.List(
        ma.fields.Nested(DependencySchema),
        metadata={"description": "External services in use (Redis); one that does not answer makes health degraded."},
    )
    models = ma.fields.Nested(ModelsCheckSchema, required=True)
    memory = ma.fields.Nested(UsageCheckSchema, required=True, metadata={"description": "Of the cgroup limit if any."})
    disk = ma.fields.Nested(UsageCheckSchema, required=True, metadata={"description": "Where the state is written."})
    storage = ma.fields.Nested(StorageCheckSchema, required=True)


class HealthSchema(ma.Schema):
    status = _status("The worst of the checks; unhealthy answers 503.")
    timestamp = ma.fields.String(required=True, metadata={"example": "2024-12-07T10:30:00.000Z"})
    checks = ma.fields.Nested(HealthChecksSchema, required=True)
    version = ma.fields.String(required=True, metadata={"example": "0.1.0"})


class LivenessSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "alive"})
    timestamp = ma.fields.String(required=True)
    worker_pid = ma.fields.Integer(required=True)


class ReadyModelSchema(ma.Schema):
    requested = ma.fields.String(required=True, metadata={"description": "'default' or a health.required_models name"})
    name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    version = ma.fields.Raw(required=True, metadata={"example": 1})
    status = ma.fields.String(required=True, metadata={"example": "ready"})
    trial = ma.fields.String(
        required=True,
        metadata={"description": "passed: one row of zeros predicted now; skipped: the feature count is unknown."},
    )


class ReadyChecksSchema(ma.Schema):
    database = _status("The shared state store answers.")
    models = ma.fields.List(ma.fields.Nested(ReadyModelSchema), required=True)


class ReadinessSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ready"})
    timestamp = ma.fields.String(required=True)
    checks = ma.fields.Nested(ReadyChecksSchema, required=True)


class StatusModelSchema(ma.Schema):
    name = ma.fields.String(required=True)
    version = ma.fields.Raw(required=True)
    loaded_at = ma.fields.String()
    prediction_count = ma.fields.Integer(metadata={"description": "Rows this worker predicted with it."})
    memory_bytes = ma.fields.Integer(metadata={"description": "Estimated memory the model holds."})
    memory = ma.fields.Nested(ModelMemorySchema, metadata={"description": "Measured in the answering worker."})


class WorkerModelMemorySchema(ma.Schema):
    private_bytes = ma.fields.Integer(metadata={"description": "Model bytes only this worker holds."})
    shared_bytes = ma.fields.Integer(metadata={"description": "Model bytes resident here that other workers map too."})
    pss_bytes = ma.fields.Integer(metadata={"description": "This worker's proportional share of its models."})
    source = ma.fields.String(metadata={"description": "smaps or estimate."})
    mapped_layouts = ma.fields.List(
        ma.fields.String(), metadata={"description": "Shared layout files this worker maps now, of any version."}
    )


class CountsSchema(ma.Schema):
    requests = ma.fields.Integer(required=True)
    predictions = ma.fields.Integer(required=True, metadata={"description": "Rows predicted."})
    prediction_errors = ma.fields.Integer(required=True)


class JobCountsSchema(ma.Schema):
    queue_depth = ma.fields.Integer(required=True, metadata={"description": "Jobs waiting to run."})
    by_state = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)


class ThreadPoolSchema(ma.Schema):
    user_api = ma.fields.String(required=True, metadata={"example": "openmp"})
    internal_api = ma.fields.String(required=True, metadata={"example": "openmp"})
    num_threads = ma.fields.Integer(required=True, metadata={"example": 1})
    version = ma.fields.String(allow_none=True)
    filepath = ma.fields.String(required=True)


class StatusSchema(ma.Schema):
    version = ma.fields.String(required=True)
    environment = ma.fields.String(required=True)
    timestamp = ma.fields.String(required=True)
    started_at = ma.fields.String(required=True, metadata={"description": "When the server (gunicorn master) started."})
    uptime_seconds = ma.fields.Float(required=True)
    worker_pid = ma.fields.Integer(required=True, metadata={"description": "The worker that answered."})
    workers = ma.fields.Integer(required=True, metadata={"description": "Configured gunicorn workers."})
    models = ma.fields.List(
        ma.fields.Nested(StatusModelSchema),
        required=True,
        metadata={"description": "Models held in memory by the worker that answered."},
    )
    model_memory = ma.fields.Nested(
        WorkerModelMemorySchema, metadata={"description": "The answering worker's models' memory, in all."}
    )
    jobs = ma.fields.Nested(
        JobCountsSchema, allow_none=True, metadata={"description": "Batch jobs: queue depth and counts by state."}
    )
    counts = ma.fields.Nested(
        CountsSchema,
        allow_none=True,
        required=True,
        metadata={"description": "Since start, all workers together; null when metrics are disabled."},
    )
    config = ma.fields.Dict(
        required=True, metadata={"description": "The effective configuration, secrets replaced by ********."}
    )
    compute_threads = ma.fields.List(
        ma.fields.Nested(ThreadPoolSchema),
        required=True,
        metadata={
            "description": "The native thread pools (BLAS, OpenMP) loaded in the worker that answered, as "
            "threadpoolctl sees them: each should use runtime.compute_threads threads."
        },
    )
