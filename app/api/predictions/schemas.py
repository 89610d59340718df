"""Request and response bodies of the prediction endpoints."""

from __future__ import annotations

import marshmallow as ma
from app.api.fields import MAX_BATCH_ROWS, FeatureRow, FeatureRows
from app.validation import StrictBoolean, model_name_validator

MODEL_NAME = {"validate": model_name_validator()}
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class PredictRequestSchema(_Strict):
    features = FeatureRow(
        required=True,
        metadata={
            "description": "One sample: a list of numbers in the model's feature order, or an object "
            "of named features when the model knows its feature names.",
            "example": IRIS_ROW,
        },
    )
    model_name = ma.fields.String(
        load_default="default", **MODEL_NAME, metadata={"description": "Model to use; 'default' when omitted."}
    )
    return_probabilities = StrictBoolean(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Include class probabilities (classifiers). Default: included; false leaves them out."
        },
    )


class PredictPathRequestSchema(PredictRequestSchema):
    """The body of ``/predict/{model_name}``: the path names the model."""

    class Meta:
        exclude = ("model_name",)
        unknown = ma.RAISE


class BatchPredictRequestSchema(_Strict):
    features = FeatureRows(
        required=True,
        metadata={
            "description": f"1 to {MAX_BATCH_ROWS} samples, each a list of numbers in the model's feature order "
            "or an object of named features.",
            "example": [IRIS_ROW, [6.3, 2.9, 5.6, 1.8]],
        },
    )
    model_name = ma.fields.String(load_default="default", **MODEL_NAME)
    return_probabilities = StrictBoolean(
        load_default=False, metadata={"description": "Include each row's class probabilities (classifiers)."}
    )


class PredictionResponseSchema(ma.Schema):
    prediction = ma.fields.Raw(
        required=True,
        metadata={"description": "Class index (classifiers) or the predicted number (regressors).", "example": 0},
    )
    prediction_label = ma.fields.String(
        allow_none=True, metadata={"description": "Class label (classifiers only).", "example": "setosa"}
    )
    probabilities = ma.fields.List(
        ma.fields.Float(),
        metadata={"description": "One per class, in class-index order.", "example": [0.97, 0.03, 0.0]},
    )
    model_name = ma.fields.String(required=True, metadata={"description": "As requested.", "example": "default"})
    served_model = ma.fields.String(
        required=True,
        metadata={"description": "The model that answered (an alias resolved).", "example": "iris_classifier"},
    )
    model_version = ma.fields.Integer(required=True, metadata={"description": "Its version.", "example": 1})
    prediction_time = ma.fields.Float(
        required=True, metadata={"description": "Seconds the model took.", "example": 0.0003}
    )
    timestamp = ma.fields.String(required=True, metadata={"example": "2024-12-07T10:30:00.000Z"})


class BatchItemSchema(ma.Schema):
    prediction = ma.fields.Raw(required=True, metadata={"example": 0})
    prediction_label = ma.fields.String(allow_none=True, metadata={"example": "setosa"})
    confidence = ma.fields.Float(
        allow_none=True,
        metadata={"description": "Highest class probability; null for regressors.", "example": 0.97},
    )
    probabilities = ma.fields.List(ma.fields.Float())


class BatchPredictionResponseSchema(ma.Schema):
    predictions = ma.fields.List(ma.fields.Nested(BatchItemSchema), required=True)
    model_name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    served_model = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    model_version = ma.fields.Integer(required=True, metadata={"example": 1})
    count = ma.fields.Integer(required=True, metadata={"example": 2})
    prediction_time = ma.fields.Float(required=True, metadata={"example": 0.0004})
    timestamp = ma.fields.String(required=True)
