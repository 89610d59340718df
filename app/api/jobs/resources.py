"""``/predict-async`` and ``/jobs``: submit a file for batch scoring, follow it, download, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import send_file, url_for
from flask.views import MethodView
from werkzeug.wrappers import Response

from app.api.faults import reads_shared_state, writes_shared_state
from app.api.jobs.schemas import (
    IdempotencyHeaderSchema,
    JobListQuerySchema,
    JobPageSchema,
    JobSchema,
    PredictAsyncRequestSchema,
    ResultQuerySchema,
)
from app.api.links import JOB_LINKS
from app.extensions import ModelServeBlueprint
from app.jobs.service import JobService
from app.jobs.store import Job
from app.security.policy import requires
from app.services import services

blp = ModelServeBlueprint("jobs", __name__, url_prefix="/api/v1", description="Asynchronous batch scoring of files.")


def jobs() -> JobService:
    service = services().jobs
    assert service is not None  # the factory always builds it
    return service


def present(job: Job) -> dict[str, Any]:
    """A job record as clients see it: progress grouped, expiry computed, links to follow."""
    done = job["rows_done"] + job["rows_failed"]
    total = job["rows_total"]
    if job["status"] == "completed":
        percent = 100.0
    elif total:
        percent = round(min(99.9, 100.0 * done / total), 1)
    else:
        percent = None if total is None else 0.0
    hours = jobs().config["retention_hours"]
    expires = None
    if hours and job.get("finished_epoch"):
        expires = (
            datetime.fromtimestamp(job["finished_epoch"] + hours * 3600, UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z")
        )
    job_id = job["job_id"]
    return {
        **job,
        "progress": {
            "rows_done": job["rows_done"],
            "rows_failed": job["rows_failed"],
            "rows_total": total,
            "percent": percent,
        },
        "expires_at": expires,
        "links": {
            "status": url_for("jobs.JobStatus", job_id=job_id),
            "result": url_for("jobs.JobResult", job_id=job_id),
            "cancel": url_for("jobs.JobResource", job_id=job_id),
        },
    }


@blp.route("/predict-async")
class PredictAsync(MethodView):
    @requires("admin", rate="batch_predict")
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.arguments(
        PredictAsyncRequestSchema,
        example={
            "data_path": "data/batch/large_dataset.csv",
            "output_path": "predictions/results.csv",
            "model_name": "production_model",
        },
    )
    @blp.response(202, JobSchema)
    @blp.alt_response(200, schema=JobSchema, description="A retry with the same Idempotency-Key: the same job.")
    @blp.doc(responses={202: {"links": JOB_LINKS}, 200: {"links": JOB_LINKS}})
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @writes_shared_state(blp)
    def post(self, body: dict[str, Any], idempotency_key: str | None) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Score a whole file in the background; poll the status, then download the result.

        The file's columns are matched to the model's feature names (else taken
        in order). Paths are inside the data and output directories. With an
        ``Idempotency-Key`` a retried submission returns the same job (200).
        """
        job, created = jobs().submit(body, idempotency_key)
        shown = present(job)
        return shown, 202 if created else 200, {"Location": shown["links"]["status"]}


@blp.route("/jobs")
class Jobs(MethodView):
    @requires("predict")
    @blp.arguments(JobListQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, JobPageSchema)
    @reads_shared_state(blp)
    def get(self, limit: int, offset: int, status: str | None) -> dict[str, Any]:
        """List jobs, newest first (``?status=`` filters)."""
        found, total = jobs().page(limit, offset, status)
        return {"jobs": [present(job) for job in found], "total": total, "limit": limit, "offset": offset}


@blp.route("/jobs/<job_id>")
class JobResource(MethodView):
    @requires("predict")
    @blp.response(200, JobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @reads_shared_state(blp)
    def get(self, job_id: str) -> dict[str, Any]:
        """A job's status (the same as ``/jobs/{job_id}/status``)."""
        return present(jobs().get(job_id))

    @requires("admin")
    @blp.response(200, JobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @writes_shared_state(blp)
    def delete(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; a running one stops at its next chunk and writes nothing."""
        return present(jobs().cancel(job_id))


@blp.route("/jobs/<job_id>/status")
class JobStatus(MethodView):
    @requires("predict")
    @blp.response(200, JobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @reads_shared_state(blp)
    def get(self, job_id: str) -> dict[str, Any]:
        """Status, progress (rows done, total, percent), timestamps, model version, and the error if it failed."""
        return present(jobs().get(job_id))


@blp.route("/jobs/<job_id>/result")
class JobResult(MethodView):
    @requires("predict")
    @blp.arguments(ResultQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, description="The output CSV, streamed.", content_type="text/csv")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @reads_shared_state(blp)
    def get(self, job_id: str, errors: bool) -> Response:
        """Download the output CSV of a completed job (409 until it is); ``?errors=true``: the error file."""
        job, path = jobs().result_file(job_id, errors=errors)
        response = send_file(path, mimetype="text/csv", as_attachment=True, download_name=path.name, max_age=0)
        response.headers["X-Job-Status"] = job["status"]
        return response
