"""``/predict``, ``/predict/{model_name}`` and ``/batch-predict``.

The request schema checks the body (its features as one array); the model's
answer is encoded once, by :mod:`app.answers`, and returned as the response
body, which ``@blp.response`` passes through and documents.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView

from app.answers import batch_answer, single_answer
from app.api.predictions.schemas import (
    BatchPredictionResponseSchema,
    BatchPredictRequestSchema,
    PredictionResponseSchema,
    PredictPathRequestSchema,
    PredictRequestSchema,
)
from app.errors import ValidationFailed
from app.extensions import ModelServeBlueprint
from app.features import Features
from app.inference import predict
from app.security.policy import requires
from app.services import services
from app.validation import NAME_MESSAGE, is_valid_name

blp = ModelServeBlueprint(
    "predictions", __name__, url_prefix="/api/v1", description="Predictions with the served models."
)
#: The errors every prediction view may answer, besides 401, 403, 429 and its arguments' 422.
ERRORS = {"400": "BAD_REQUEST", "404": "NOT_FOUND", "413": "REQUEST_ENTITY_TOO_LARGE", "415": "UNSUPPORTED_MEDIA_TYPE"}


def check_model_name(name: str) -> None:
    """Path parameters skip schema loading; hold them to the body's rule."""
    if not is_valid_name(name):
        raise ValidationFailed(f"Invalid model_name: {NAME_MESSAGE}", errors={"path": {"model_name": [NAME_MESSAGE]}})


def answer(model_name: str, features: Features, with_probabilities: bool, batch: bool = False) -> Response:
    """Predict with the model ``model_name`` resolves to; the body says which version answered, and so do headers."""
    svc = services()
    served = svc.registry.get(model_name)
    outputs = predict(served, features, svc.metrics, g.get("user_id"), labels=not batch)
    encode = batch_answer if batch else single_answer
    return Response(
        encode(model_name, served, outputs, with_probabilities),
        mimetype="application/json",
        headers=[("X-Model-Name", served.name), ("X-Model-Version", str(served.version))],
    )


@blp.route("/predict")
class Predict(MethodView):
    @requires("predict", rate="predict", errors=ERRORS)
    @blp.arguments(PredictRequestSchema(), example={"features": [5.1, 3.5, 1.4, 0.2], "model_name": "default"})
    @blp.response(200, PredictionResponseSchema())
    def post(self, body: dict[str, Any]) -> Response:
        """Predict one sample with the default model (or the one named in the body).

        A body that fits this schema still gets 422 when its features do not fit the
        model: ``GET /api/v1/models/{model_name}/info`` gives its ``n_features`` and
        ``feature_names``.
        """
        return answer(body["model_name"], body["features"], body["return_probabilities"] is not False)


@blp.route("/predict/<name:model_name>")
class PredictWithModel(MethodView):
    @requires("predict", rate="predict", errors=ERRORS)
    @blp.arguments(PredictPathRequestSchema(), example={"features": [5.1, 3.5, 1.4, 0.2]})
    @blp.response(200, PredictionResponseSchema())
    def post(self, body: dict[str, Any], model_name: str) -> Response:
        """Predict one sample with the model (or alias) named in the path.

        422 when the features do not fit the model (see its ``n_features`` and
        ``feature_names`` in ``GET /api/v1/models/{model_name}/info``).
        """
        check_model_name(model_name)
        return answer(model_name, body["features"], body["return_probabilities"] is not False)


@blp.route("/batch-predict")
class BatchPredict(MethodView):
    @requires("predict", rate="batch_predict", errors=ERRORS)
    @blp.arguments(
        BatchPredictRequestSchema(),
        example={"features": [[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8]], "model_name": "iris_classifier"},
    )
    @blp.response(200, BatchPredictionResponseSchema())
    def post(self, body: dict[str, Any]) -> Response:
        """Predict 1 to 1000 samples in one call; each result has its confidence.

        422 when a row's features do not fit the model; the message names the row.
        """
        return answer(body["model_name"], body["features"], body["return_probabilities"], batch=True)
