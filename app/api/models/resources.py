"""``/models``: list, load, unload and describe models."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.models.schemas import (
    LoadModelRequestSchema,
    LoadModelResponseSchema,
    ModelInfoSchema,
    ModelListSchema,
    UnloadModelResponseSchema,
)
from app.api.predictions.resources import check_model_name
from app.extensions import services
from app.model_info import model_info, model_summary

blp = Blueprint("models", __name__, url_prefix="/api/v1/models", description="Model management.")


@blp.route("")
class Models(MethodView):
    @blp.response(200, ModelListSchema)
    def get(self) -> dict[str, Any]:
        """List the models available to predict with."""
        registry = services().registry
        records = registry.records()
        return {
            "models": [model_summary(registry, records[name]) for name in sorted(records)],
            "count": len(records),
            "default_model": registry.resolve_name("default"),
            "max_models": registry.max_models,
        }


@blp.route("/load")
class LoadModel(MethodView):
    @blp.arguments(
        LoadModelRequestSchema,
        example={"model_name": "custom_model", "model_path": "models/trained/custom_model.pkl"},
    )
    @blp.response(200, LoadModelResponseSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load a model file from the model directory and serve it in every worker.

        Loading a name that exists replaces it once the new file has loaded and
        passed a trial prediction; if it fails, the old model keeps serving.
        """
        registry = services().registry
        served = registry.load(body["model_name"], body["model_path"], body["model_type"])
        return {"message": f"Model '{served.name}' loaded.", "model": model_info(registry, served.record)}


@blp.route("/<model_name>")
class Model(MethodView):
    @blp.response(200, UnloadModelResponseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def delete(self, model_name: str) -> dict[str, Any]:
        """Stop serving a model in every worker (the file stays on disk)."""
        check_model_name(model_name)
        services().registry.unload(model_name)
        return {"message": f"Model '{model_name}' unloaded.", "model_name": model_name}


@blp.route("/<model_name>/info")
class ModelInfo(MethodView):
    @blp.response(200, ModelInfoSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, model_name: str) -> dict[str, Any]:
        """Describe a model: adapter, class, task, features, labels, file, sha256, counts."""
        check_model_name(model_name)
        registry = services().registry
        served = registry.get(model_name)  # loads it in this worker if needed
        return model_info(registry, served.record)
