"""The errors job requests can meet; each is an :class:`~app.errors.ApiError` with its status."""

from __future__ import annotations

from app.errors import ApiError, BadRequest, Conflict, NotFound, ValidationFailed


class JobNotFound(NotFound):
    def __init__(self, job_id: str):
        super().__init__(f"No job '{job_id}'. GET /api/v1/jobs lists the jobs.")


class JobPathError(BadRequest):
    """A data or output path the server refuses (outside its directory, not a regular file)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", errors={"json": {field: [message]}})


class InputFileError(ValidationFailed):
    """The input file cannot be scored as a whole: empty, no header, missing columns, wrong format."""


class JobConflict(Conflict):
    """The job is not in a state that allows this (result before completion, cancel after the end)."""


class BrokerUnavailable(ApiError):
    """The Celery broker did not take the job (503): the job is recorded as failed."""

    code = 503


class JobStoreUnavailable(ApiError):
    """The job store did not answer in time (Redis down, a lock not freed, SQLite locked): retry (503)."""

    code = 503
