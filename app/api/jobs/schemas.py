"""Request and response bodies of ``/predict-async`` and ``/jobs``."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.api.predictions.schemas import MODEL_NAME
from app.confined_paths import path_pattern
from app.jobs.paths import INPUT_SUFFIXES
from app.jobs.store import STATUSES
from app.validation import StrictBoolean

PATH = {"validate": validate.Length(min=1, max=1024)}


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class PredictAsyncRequestSchema(_Strict):
    data_path = ma.fields.String(
        required=True,
        **PATH,
        metadata={
            "description": "A .csv (header row) or .parquet file in the data directory (jobs.data_directory): "
            "relative to it, or relative to the server's directory as in the spec (data/batch/x.csv).",
            "example": "data/batch/large_dataset.csv",
            # Documented, and enforced by the path rules (400 naming the field), not by the schema.
            "pattern": path_pattern(list(INPUT_SUFFIXES)),
        },
    )
    output_path = ma.fields.String(
        required=True,
        **PATH,
        metadata={
            "description": "The .csv to write in the output directory (jobs.output_directory), same rules.",
            "example": "predictions/results.csv",
            "pattern": path_pattern([".csv"]),
        },
    )
    model_name = ma.fields.String(load_default="default", **MODEL_NAME, metadata={"example": "production_model"})
    return_probabilities = StrictBoolean(
        load_default=False, metadata={"description": "Add a probability_<label> column per class."}
    )
    on_error = ma.fields.String(
        load_default="fail",
        validate=validate.OneOf(["fail", "skip"]),
        metadata={"description": "A row that cannot be scored fails the job (fail) or goes to the error file (skip)."},
    )
    overwrite = StrictBoolean(load_default=False, metadata={"description": "Replace an existing output file."})
    id_column = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=256),
        metadata={"description": "Column carried to the output; default: a column named id, else the row number."},
    )
    delimiter = ma.fields.String(
        load_default=",",
        validate=validate.OneOf([",", ";", "\t", "|"]),
        metadata={"description": "CSV field delimiter."},
    )


class IdempotencyHeaderSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # every other header

    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        load_default=None,
        validate=validate.Regexp(r"^[\x21-\x7e]{1,255}$", error="must be 1-255 printable ASCII characters."),
        metadata={"description": "Retrying with the same key returns the same job instead of a second one."},
    )


class JobListQuerySchema(_Strict):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(min=0, max=10**9))
    status = ma.fields.String(load_default=None, validate=validate.OneOf(STATUSES))


class ResultQuerySchema(_Strict):
    errors = ma.fields.Boolean(
        load_default=False, metadata={"description": "Download the error file (rows skipped with on_error: skip)."}
    )


class ProgressSchema(ma.Schema):
    rows_done = ma.fields.Integer(required=True, metadata={"description": "Rows scored so far."})
    rows_failed = ma.fields.Integer(required=True, metadata={"description": "Rows skipped (on_error: skip)."})
    rows_total = ma.fields.Integer(allow_none=True, metadata={"description": "Rows in the file, once known."})
    percent = ma.fields.Float(allow_none=True, metadata={"example": 42.5})


class JobEventSchema(ma.Schema):
    at = ma.fields.String(required=True)
    event = ma.fields.String(required=True, metadata={"example": "requeued"})
    detail = ma.fields.String()


class JobSchema(ma.Schema):
    job_id = ma.fields.String(required=True, metadata={"example": "9f0c2e6a5b7d4c1e8a3f6b2d9e0c1a4b"})
    status = ma.fields.String(required=True, metadata={"description": " | ".join(STATUSES), "example": "queued"})
    model_name = ma.fields.String(required=True, metadata={"description": "As requested."})
    served_model = ma.fields.String(required=True, metadata={"description": "The model it resolved to."})
    model_version = ma.fields.Integer(required=True, metadata={"description": "The version that scores it."})
    data_path = ma.fields.String(required=True)
    output_path = ma.fields.String(required=True)
    format = ma.fields.String(metadata={"description": "csv or parquet"})
    return_probabilities = ma.fields.Boolean()
    on_error = ma.fields.String()
    overwrite = ma.fields.Boolean()
    id_column = ma.fields.String(allow_none=True)
    delimiter = ma.fields.String()
    progress = ma.fields.Nested(ProgressSchema, required=True)
    error = ma.fields.String(allow_none=True, metadata={"description": "Why it failed, for a person."})
    error_file = ma.fields.String(
        allow_none=True, metadata={"description": "Skipped rows and why, in the output directory."}
    )
    attempts = ma.fields.Integer(metadata={"description": "Runs started (a job is re-run when its runner dies)."})
    backend = ma.fields.String(metadata={"description": "embedded or celery"})
    created_at = ma.fields.String(required=True)
    started_at = ma.fields.String(allow_none=True)
    finished_at = ma.fields.String(allow_none=True)
    updated_at = ma.fields.String()
    expires_at = ma.fields.String(allow_none=True, metadata={"description": "When the record and output expire."})
    events = ma.fields.List(ma.fields.Nested(JobEventSchema))
    links = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


class JobPageSchema(ma.Schema):
    jobs = ma.fields.List(ma.fields.Nested(JobSchema), required=True)
    total = ma.fields.Integer(required=True)
    limit = ma.fields.Integer(required=True)
    offset = ma.fields.Integer(required=True)
