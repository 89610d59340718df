"""Request and response bodies of the model-management endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.api.predictions.schemas import MODEL_NAME
from app.confined_paths import RELATIVE_PATH_PATTERN
from app.validation import JsonInteger


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


def model_path_field(example: str) -> ma.fields.String:
    return ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=4096),
        metadata={
            "description": "A file inside the model directory: relative to it (custom_model.pkl) or, "
            "as in the spec, relative to the working directory (models/trained/custom_model.pkl).",
            "example": example,
            # Documented, and enforced by the path rules (400), not by the schema.
            "pattern": RELATIVE_PATH_PATTERN + "$",
        },
    )


class LoadModelRequestSchema(_Strict):
    model_name = ma.fields.String(required=True, **MODEL_NAME, metadata={"example": "custom_model"})
    model_path = model_path_field("models/trained/custom_model.pkl")
    model_type = ma.fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=32),
        metadata={
            "description": "Adapter name (GET /api/v1/adapters); inferred from the file when omitted.",
            "example": "sklearn",
        },
    )


VERSION = JsonInteger(
    load_default=None,
    allow_none=True,
    validate=validate.Range(min=1),
    metadata={"description": "A version of the model; omitted: its current version.", "example": 1},
)


class VersionQuerySchema(_Strict):
    version = ma.fields.Integer(  # query strings are text: "2" is a version
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "A version of the model; omitted: its current version.", "example": 1},
    )


class AliasRequestSchema(_Strict):
    alias = ma.fields.String(required=True, **MODEL_NAME, metadata={"example": "default"})
    version = VERSION


class RollbackRequestSchema(_Strict):
    version = JsonInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "The version to make current; omitted: the previous one."},
    )


class VersionSchema(ma.Schema):
    version = ma.fields.Integer(required=True, metadata={"example": 1})
    file = ma.fields.String(required=True)
    sha256 = ma.fields.String(required=True)
    size_bytes = ma.fields.Integer()
    registered_at = ma.fields.String()
    origin = ma.fields.String(metadata={"description": "auto_load or api"})
    current = ma.fields.Boolean()
    loaded = ma.fields.Boolean(metadata={"description": "Held in memory by the worker that answered."})


class ModelMemorySchema(ma.Schema):
    """How a loaded version's memory is shared between the workers of a machine, and its cost to this one."""

    sharing = ma.fields.String(
        required=True,
        metadata={"description": "mapped_file: every worker maps one file; private: each worker has a copy."},
    )
    shared = ma.fields.Boolean(required=True, metadata={"description": "Whether the workers share this model."})
    reason = ma.fields.String(allow_none=True, metadata={"description": "Why it is not shared."})
    source = ma.fields.String(
        metadata={"description": "smaps: measured from /proc/self/smaps; estimate: the pickled size at load."}
    )
    private_bytes = ma.fields.Integer(metadata={"description": "Bytes only the answering worker holds for it."})
    shared_bytes = ma.fields.Integer(metadata={"description": "Its resident bytes other processes map too."})
    pss_bytes = ma.fields.Integer(
        metadata={"description": "The answering worker's proportional share (shared pages divided by their mappers)."}
    )
    mapped_bytes = ma.fields.Integer(metadata={"description": "Size of the mapped files (once per machine)."})
    resident_bytes = ma.fields.Integer(metadata={"description": "Its bytes resident in the answering worker."})
    files = ma.fields.List(ma.fields.String(), metadata={"description": "The mapped layout files."})


class ModelSummarySchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    version = ma.fields.Integer(required=True, metadata={"description": "The current version.", "example": 1})
    versions = ma.fields.List(ma.fields.Integer(), metadata={"example": [1]})
    adapter = ma.fields.String(required=True, metadata={"example": "sklearn"})
    task = ma.fields.String(allow_none=True, metadata={"example": "classification"})
    file = ma.fields.String(required=True, metadata={"description": "Relative to the model directory."})
    description = ma.fields.String(allow_none=True)
    aliases = ma.fields.List(ma.fields.String(), metadata={"example": ["default"]})
    loaded = ma.fields.Boolean(metadata={"description": "Current version held in memory by the answering worker."})
    memory_bytes = ma.fields.Integer(allow_none=True, metadata={"description": "Estimated, when loaded."})


class ModelInfoSchema(ModelSummarySchema):
    current = ma.fields.Boolean(metadata={"description": "Whether this version is the model's current one."})
    memory = ma.fields.Nested(ModelMemorySchema, metadata={"description": "Measured in the answering worker."})
    model_class = ma.fields.String(allow_none=True, metadata={"example": "sklearn.LogisticRegression"})
    n_features = ma.fields.Integer(allow_none=True, metadata={"example": 4})
    feature_names = ma.fields.List(ma.fields.String(), allow_none=True)
    classes = ma.fields.List(ma.fields.Raw(), allow_none=True)
    labels = ma.fields.List(ma.fields.String(), allow_none=True)
    sha256 = ma.fields.String()
    size_bytes = ma.fields.Integer()
    registered_at = ma.fields.String()
    origin = ma.fields.String(metadata={"description": "auto_load or api"})
    loaded_at = ma.fields.String(allow_none=True)
    load_seconds = ma.fields.Float(metadata={"description": "Load and trial prediction time in this worker."})
    prediction_count = ma.fields.Integer(metadata={"description": "Rows predicted by the answering worker."})
    worker_pid = ma.fields.Integer()
    training = ma.fields.Dict(allow_none=True, metadata={"description": "Library versions it was trained with."})
    version_mismatch = ma.fields.Dict(
        allow_none=True, metadata={"description": "Trained-with versions that differ from the server's (allowed)."}
    )
    metadata = ma.fields.Dict(metadata={"description": "The sidecar metadata."})
    details = ma.fields.Dict(metadata={"description": "Adapter-specific facts (objective, trees, ...)."})
    signature = ma.fields.Dict(
        metadata={
            "description": "What the model takes: input (array or dataframe), source (model, metadata, mlflow) "
            "and columns, each with name, type (number, string, boolean), nullable, and for string "
            "columns the categories it knows and whether only those are accepted (closed)."
        }
    )
    version_history = ma.fields.List(ma.fields.Nested(VersionSchema))


class ModelListSchema(ma.Schema):
    models = ma.fields.List(ma.fields.Nested(ModelSummarySchema), required=True)
    count = ma.fields.Integer(required=True)
    default_model = ma.fields.String(metadata={"description": "The model 'default' resolves to."})
    max_models = ma.fields.Integer(metadata={"description": "Model versions held in memory per worker."})
    loaded_count = ma.fields.Integer(metadata={"description": "Model versions held by the answering worker."})


class LoadModelResponseSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "Model 'custom_model' version 1 loaded."})
    model = ma.fields.Nested(ModelInfoSchema, required=True)


class UnloadModelResponseSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "Model 'custom_model' unloaded."})
    model_name = ma.fields.String(required=True)


class AliasSchema(ma.Schema):
    alias = ma.fields.String(required=True, metadata={"example": "default"})
    model_name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    version = ma.fields.Integer(
        allow_none=True, metadata={"description": "Pinned version; null follows the model's current version."}
    )
    resolved_version = ma.fields.Integer(allow_none=True, metadata={"description": "The version it serves now."})


class AliasListSchema(ma.Schema):
    aliases = ma.fields.List(ma.fields.Nested(AliasSchema), required=True)


class RollbackResponseSchema(ma.Schema):
    message = ma.fields.String(required=True)
    model_name = ma.fields.String(required=True)
    version = ma.fields.Integer(required=True, metadata={"description": "The version now current."})


class TrustRequestSchema(_Strict):
    model_path = model_path_field("custom_model.pkl")


class TrustResponseSchema(ma.Schema):
    message = ma.fields.String(required=True)
    file = ma.fields.String(required=True, metadata={"description": "Relative to the model directory."})
    sha256 = ma.fields.String(required=True, metadata={"description": "The content now trusted."})
