"""Request and response bodies of the prediction endpoints."""

from __future__ import annotations

import marshmallow as ma
from typing import Any

from app.api.fields import MAX_BATCH_ROWS, DataFrameSplit, FeatureRow, FeatureRows
from app.validation import StrictBoolean, model_name_validator

MODEL_NAME = {"validate": model_name_validator()}
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


#: The input formats a prediction body may use instead of ``features``, all loaded as its Features.
FORMATS = ("features", "instances", "dataframe_records", "dataframe_split")
RECORDS_EXAMPLE = [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]


class _Formats(_Strict):
    """The ecosystem's input formats beside ``features``: exactly one per body, loaded as ``features``."""

    instances = FeatureRows(
        metadata={"description": "TF-Serving / KServe v1: a list of rows (objects or lists).", "example": RECORDS_EXAMPLE}
    )
    dataframe_records = FeatureRows(
        metadata={"description": "MLflow: a list of objects, one per row.", "example": RECORDS_EXAMPLE}
    )
    dataframe_split = DataFrameSplit(
        metadata={
            "description": "MLflow: column names and rows of values.",
            "example": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"], "data": [IRIS_ROW]},
        }
    )
    #: How many rows a body of this schema holds (None: any, within the batch limit).
    ROWS: int | None = None

    @ma.post_load
    def _as_features(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Check there is exactly one format and load it as ``features`` (one hook: it runs on every request)."""
        given = [name for name in FORMATS if name in data]
        if not given:
            raise ma.ValidationError(f"Missing data for required field: send one of {', '.join(FORMATS)}.", "features")
        if len(given) > 1:
            raise ma.ValidationError(f"Send only one of {', '.join(FORMATS)} (got {', '.join(given)}).", given[-1])
        name = given[0]
        if name != "features":
            rows = data["features"] = data.pop(name)
            if self.ROWS is not None and len(rows) != self.ROWS:
                raise ma.ValidationError(f"Must hold one row here, got {len(rows)}; send several to /batch-predict.", name)
        return data


class PredictRequestSchema(_Formats):
    ROWS = 1
    features = FeatureRow(
        metadata={
            "description": "One sample: a list of values in the model's feature order, or an object "
            "of named features when the model knows its feature names. Values are numbers, strings, "
            "booleans or null, as the model's signature says. Or send instances, dataframe_records or "
            "dataframe_split with one row.",
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


class BatchPredictRequestSchema(_Formats):
    features = FeatureRows(
        metadata={
            "description": f"1 to {MAX_BATCH_ROWS} samples, each a list of values in the model's feature order "
            "or an object of named features. Or send instances, dataframe_records or dataframe_split instead; "
            "or a text/csv body (header row) with model_name and return_probabilities in the query string.",
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
