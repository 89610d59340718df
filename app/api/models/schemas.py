"""Request and response bodies of the model-management endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.api.predictions.schemas import MODEL_NAME


class LoadModelRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    model_name = ma.fields.String(required=True, **MODEL_NAME, metadata={"example": "custom_model"})
    model_path = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=4096),
        metadata={
            "description": "A file inside the model directory: relative to it (custom_model.pkl) or, "
            "as in the spec, relative to the working directory (models/trained/custom_model.pkl).",
            "example": "models/trained/custom_model.pkl",
        },
    )
    model_type = ma.fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=32),
        metadata={
            "description": "Adapter name (GET /api/v1/adapters); inferred from the file when omitted.",
            "example": "sklearn",
        },
    )


class ModelSummarySchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    version = ma.fields.String(required=True, metadata={"example": "1"})
    adapter = ma.fields.String(required=True, metadata={"example": "sklearn"})
    task = ma.fields.String(allow_none=True, metadata={"example": "classification"})
    file = ma.fields.String(required=True, metadata={"description": "Relative to the model directory."})
    description = ma.fields.String(allow_none=True)
    aliases = ma.fields.List(ma.fields.String(), metadata={"example": ["default"]})
    loaded = ma.fields.Boolean(metadata={"description": "Held in memory by the worker that answered."})


class ModelInfoSchema(ModelSummarySchema):
    model_class = ma.fields.String(allow_none=True, metadata={"example": "sklearn.linear_model.LogisticRegression"})
    n_features = ma.fields.Integer(allow_none=True, metadata={"example": 4})
    feature_names = ma.fields.List(ma.fields.String(), allow_none=True)
    classes = ma.fields.List(ma.fields.Raw(), allow_none=True)
    labels = ma.fields.List(ma.fields.String(), allow_none=True)
    sha256 = ma.fields.String()
    size_bytes = ma.fields.Integer()
    registered_at = ma.fields.String()
    origin = ma.fields.String(metadata={"description": "auto_load or api"})
    loaded_at = ma.fields.String(allow_none=True)
    prediction_count = ma.fields.Integer(metadata={"description": "Rows predicted by the answering worker."})
    worker_pid = ma.fields.Integer()
    training = ma.fields.Dict(allow_none=True, metadata={"description": "Library versions it was trained with."})
    details = ma.fields.Dict(metadata={"description": "Adapter-specific facts (objective, trees, ...)."})


class ModelListSchema(ma.Schema):
    models = ma.fields.List(ma.fields.Nested(ModelSummarySchema), required=True)
    count = ma.fields.Integer(required=True)
    default_model = ma.fields.String(metadata={"description": "The model 'default' resolves to."})
    max_models = ma.fields.Integer()


class LoadModelResponseSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "Model 'custom_model' loaded."})
    model = ma.fields.Nested(ModelInfoSchema, required=True)


class UnloadModelResponseSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "Model 'custom_model' unloaded."})
    model_name = ma.fields.String(required=True)
