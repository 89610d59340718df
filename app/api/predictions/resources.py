"""``/predict``, ``/predict/{model_name}`` and ``/batch-predict``."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.predictions.schemas import (
    BatchPredictionResponseSchema,
    BatchPredictRequestSchema,
    PredictionResponseSchema,
    PredictPathRequestSchema,
    PredictRequestSchema,
)
from app.errors import ValidationFailed
from app.extensions import services
from app.inference import predict_rows, utc_timestamp
from app.registry import ServedModel
from app.security.policy import requires
from app.validation import NAME_MESSAGE, is_valid_name

blp = Blueprint("predictions", __name__, url_prefix="/api/v1", description="Predictions with the served models.")


def check_model_name(name: str) -> None:
    """Path parameters skip schema loading; hold them to the body's rule."""
    if not is_valid_name(name):
        raise ValidationFailed(f"Invalid model_name: {NAME_MESSAGE}", errors={"path": {"model_name": [NAME_MESSAGE]}})


Reply = tuple[dict[str, Any], int, dict[str, str]]


def answered_by(served: ServedModel, body: dict[str, Any]) -> Reply:
    """Say which model version answered, in the body and in headers a proxy can log."""
    body["served_model"] = served.name
    body["model_version"] = served.version
    body["timestamp"] = utc_timestamp()
    return body, 200, {"X-Model-Name": served.name, "X-Model-Version": str(served.version)}


def predict_one(model_name: str, body: dict[str, Any]) -> Reply:
    served = services().registry.get(model_name)
    want = body.get("return_probabilities")
    results, elapsed = predict_rows(served, [body["features"]], with_probabilities=want is not False)
    result = results[0]
    result.pop("confidence", None)
    return answered_by(served, {**result, "model_name": model_name, "prediction_time": elapsed})


@blp.route("/predict")
class Predict(MethodView):
    @requires("predict", rate="predict")
    @blp.arguments(PredictRequestSchema, example={"features": [5.1, 3.5, 1.4, 0.2], "model_name": "default"})
    @blp.response(200, PredictionResponseSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, body: dict[str, Any]) -> Reply:
        """Predict one sample with the default model (or the one named in the body)."""
        return predict_one(body["model_name"], body)


@blp.route("/predict/<model_name>")
class PredictWithModel(MethodView):
    @requires("predict", rate="predict")
    @blp.arguments(PredictPathRequestSchema, example={"features": [5.1, 3.5, 1.4, 0.2]})
    @blp.response(200, PredictionResponseSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, body: dict[str, Any], model_name: str) -> Reply:
        """Predict one sample with the model (or alias) named in the path."""
        check_model_name(model_name)
        return predict_one(model_name, body)


@blp.route("/batch-predict")
class BatchPredict(MethodView):
    @requires("predict", rate="batch_predict")
    @blp.arguments(
        BatchPredictRequestSchema,
        example={"features": [[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8]], "model_name": "iris_classifier"},
    )
    @blp.response(200, BatchPredictionResponseSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, body: dict[str, Any]) -> Reply:
        """Predict 1 to 1000 samples in one call; each result has its confidence."""
        served = services().registry.get(body["model_name"])
        results, elapsed = predict_rows(served, body["features"], with_probabilities=body["return_probabilities"])
        return answered_by(
            served,
            {
                "predictions": results,
                "model_name": body["model_name"],
                "count": len(results),
                "prediction_time": elapsed,
            },
        )
