"""The Open Inference Protocol (V2) REST endpoints, beside ``/api/v1`` on the same request path.

Health, server and model metadata, readiness, inference (JSON tensors, and the
binary tensor data extension) and the model repository extension, each a view
of the same registry, access checks, rate limits, metrics and logs as
``/api/v1``. Errors are the protocol's ``{"error": "..."}``
(:class:`app.extensions.ModelServeApi`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Response, g, request
from flask.views import MethodView

from app import __version__
from app.api.predictions.resources import check_model_name
from app.api.v2.framing import HEADER_LENGTH, V2Blueprint, binary_part
from app.api.v2.infer import (
    MATRIX_INPUT,
    PREDICT,
    PREDICT_PROBA,
    feature_count,
    infer,
    predicted_values,
    proba_dtype,
    wanted_outputs,
)
from app.api.v2.schemas import (
    INFER_EXAMPLE,
    EmptySchema,
    InferenceRequestSchema,
    InferenceResponseSchema,
    LiveSchema,
    ModelMetadataSchema,
    ModelReadySchema,
    ReadySchema,
    RepositoryIndexRequestSchema,
    RepositoryLoadRequestSchema,
    RepositoryModelSchema,
    RepositoryUnloadRequestSchema,
    ServerMetadataSchema,
)
from app.api.v2.tensors import datatype_of, decode_inputs, response_body
from app.errors import NotFound
from app.health import readiness_report
from app.inference import Outputs, feature_names_of
from app.model_input import signature_of
from app.registry import ServedModel
from app.security.access import current_actor
from app.security.policy import public, requires
from app.services import services
from app.signature import Field

blp = V2Blueprint("v2", __name__, url_prefix="/v2", description="The Open Inference Protocol (V2), REST.")
#: Response names of the V2 error body, by status (registered by :func:`app.api.v2.register`).
V2_ERRORS = {str(code): f"V2_{code}" for code in (400, 401, 403, 404, 405, 409, 413, 415, 429, 503)}
EXTENSIONS = ["binary_tensor_data", "model_repository"]


def v2_access(role: str, rate: str | None = None, *codes: int) -> Any:
    """:func:`app.security.policy.requires` documenting the protocol's error body for its errors."""
    wanted = ("400", "401", "403", *(("429",) if rate else ()), *map(str, codes))
    return requires(role, rate=rate, errors={code: V2_ERRORS[code] for code in wanted})


def served_model(model_name: str, version: str | None) -> ServedModel:
    """The version named in the path (default: what the name or alias serves now); 404 when unknown."""
    check_model_name(model_name)
    registry = services().registry
    if version is None:
        return registry.get(model_name)
    if not (version.isascii() and version.isdigit()):
        raise NotFound(f"Model '{model_name}' has no version '{version}': versions are numbers.")
    return registry.get_version(registry.resolve_name(model_name), int(version))


@blp.route("")
class ServerMetadata(MethodView):
    @public
    @blp.response(200, ServerMetadataSchema)
    def get(self) -> dict[str, Any]:
        """The server's name, version and protocol extensions."""
        return {"name": "modelserve", "version": __version__, "extensions": EXTENSIONS}


@blp.route("/health/live")
class Live(MethodView):
    @public
    @blp.response(200, LiveSchema)
    def get(self) -> dict[str, Any]:
        """Liveness: the process answers (as ``/api/v1/health/live``)."""
        return {"live": True}


@blp.route("/health/ready")
class Ready(MethodView):
    @public
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, response=V2_ERRORS["503"], description="Not ready; the error says why.")
    def get(self) -> dict[str, Any]:
        """Readiness: the same checks as ``/api/v1/health/ready`` (state store, default model's trial row)."""
        svc = services()
        readiness_report(svc.registry, svc.config)
        return {"ready": True}


@blp.route("/models/<name:model_name>", endpoint="model")
@blp.route("/models/<name:model_name>/versions/<version>", endpoint="model_version")
class ModelMetadata(MethodView):
    @v2_access("predict", None, 404)
    @blp.response(200, ModelMetadataSchema)
    def get(self, model_name: str, version: str | None = None) -> dict[str, Any]:
        """The model's versions, adapter (platform), inputs and outputs with their datatypes and shapes.

        An array model's input is one ``[rows, features]`` tensor (any name); with feature names it
        also takes one ``[rows]`` tensor per feature. A model that takes a DataFrame lists one ``[-1]``
        input per column: BYTES for strings (with their categories), FP64 for numbers, each ``nullable``
        or not.
        """
        served = served_model(model_name, version)
        return model_metadata(served)


@blp.route("/models/<name:model_name>/ready", endpoint="model_ready")
@blp.route("/models/<name:model_name>/versions/<version>/ready", endpoint="model_version_ready")
class ModelReady(MethodView):
    @v2_access("predict", None, 404)
    @blp.response(200, ModelReadySchema)
    def get(self, model_name: str, version: str | None = None) -> dict[str, Any]:
        """Ready when the version is loaded in this worker (it is loaded now if it was not)."""
        served = served_model(model_name, version)
        return {"name": served.name, "version": str(served.version), "ready": True}


@blp.route("/models/<name:model_name>/infer", endpoint="infer")
@blp.route("/models/<name:model_name>/versions/<version>/infer", endpoint="infer_version")
class Infer(MethodView):
    @v2_access("predict", "predict", 404, 413, 415)
    @blp.arguments(InferenceRequestSchema(), example=INFER_EXAMPLE)
    @blp.response(200, InferenceResponseSchema)
    def post(self, body: dict[str, Any], model_name: str, version: str | None = None) -> Response:
        """Predict: ``predict`` for every row, and ``predict_proba`` when asked for (by output name, or the
        ``return_probabilities`` parameter); the request's ``id`` comes back.

        With the binary tensor data extension (``Inference-Header-Content-Length``) the JSON header is
        followed by the inputs' bytes, and outputs asked for with ``binary_data`` follow the response's.
        """
        served = served_model(model_name, version)
        tensors = decode_inputs(body["inputs"], binary_part(request))
        svc = services()
        parts, chunks = infer(served, tensors, wanted_outputs(body), svc.metrics, g.get("user_id"))
        header: dict[str, Any] = {"model_name": served.name, "model_version": str(served.version)}
        if "id" in body:
            header["id"] = body["id"]
        header["outputs"] = parts
        content, length = response_body(header, chunks)
        headers = [("X-Model-Name", served.name), ("X-Model-Version", str(served.version))]
        if length is not None:
            headers.append((HEADER_LENGTH, str(length)))
        mimetype = "application/json" if length is None else "application/octet-stream"
        return Response(content, mimetype=mimetype, headers=headers)


@blp.route("/repository/index")
class RepositoryIndex(MethodView):
    @v2_access("admin", "model_management")
    @blp.arguments(RepositoryIndexRequestSchema(), required=False, example={"ready": True})
    @blp.response(200, RepositoryModelSchema(many=True))
    def post(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Every version of every model in the registry; each is READY (any worker loads it on first use)."""
        state = services().registry.state()
        return [
            {"name": name, "version": str(version), "state": "READY", "reason": ""}
            for name, model in sorted(state.models.items())
            for version in sorted(model.versions)
        ]


@blp.route("/repository/models/<name:model_name>/load")
class RepositoryLoad(MethodView):
    @v2_access("admin", "model_management", 404, 409)
    @blp.arguments(
        RepositoryLoadRequestSchema, required=False, example={"parameters": {"model_path": "iris_classifier.joblib"}}
    )
    @blp.response(200, EmptySchema)
    def post(self, body: dict[str, Any], model_name: str) -> dict[str, Any]:
        """Load a model in every worker: the file ``parameters.model_path`` names, else the model's own
        file again (its current one, or the one it had when it was unloaded). As ``POST /api/v1/models/load``."""
        check_model_name(model_name)
        parameters = body["parameters"] or {}
        registry = services().registry
        path, model_type = parameters.get("model_path"), parameters.get("model_type")
        if path is None:
            state = registry.state()
            model = state.models.get(model_name)
            if model is not None:
                path, model_type = model.current_record.file, model_type or model.current_record.model_type
            else:
                path = state.unloaded.get(model_name)
        if not isinstance(path, str) or not (model_type is None or isinstance(model_type, str)):
            raise NotFound(
                f"Model '{model_name}' is not in the repository: give parameters.model_path, a file in the "
                "model directory (and parameters.model_type when its suffix does not say)."
            )
        registry.load(model_name, path, model_type, actor=current_actor())
        return {}


@blp.route("/repository/models/<name:model_name>/unload")
class RepositoryUnload(MethodView):
    @v2_access("admin", "model_management", 404)
    @blp.arguments(RepositoryUnloadRequestSchema(), required=False, example={})
    @blp.response(200, EmptySchema)
    def post(self, body: dict[str, Any], model_name: str) -> dict[str, Any]:
        """Stop serving a model (every version) in every worker, as ``DELETE /api/v1/models/{model_name}``."""
        check_model_name(model_name)
        services().registry.unload(model_name, actor=current_actor())
        return {}


def model_metadata(served: ServedModel) -> dict[str, Any]:
    """The protocol's model metadata from what the model describes: features, classes, probabilities."""
    model = services().registry.snapshot().models.get(served.name)
    versions = sorted(model.versions) if model is not None else [served.version]
    sig = signature_of(served)
    if sig.frame:
        inputs = [column_input(f) for f in sig.fields]
    else:
        count = feature_count(served)
        names = feature_names_of(served)
        matrix: dict[str, Any] = {"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, count or -1]}
        if names is not None:
            matrix["parameters"] = {"feature_names": names}
        if sig.nullable:
            matrix.setdefault("parameters", {})["nullable"] = True
        inputs = [matrix]
    if served.description.task == "regression":
        predict_type = "FP64"
    else:
        predict_type = datatype_of(predicted_values(served, Outputs(0.0, indices=[0])))
    outputs = [{"name": PREDICT, "datatype": predict_type, "shape": [-1, 1]}]
    if served.predict_proba is not None:
        classes = served.description.classes
        shape = [-1, len(classes) if classes is not None and len(classes) else -1]
        outputs.append(
            {"name": PREDICT_PROBA, "datatype": datatype_of(np.empty(0, proba_dtype(served))), "shape": shape}
        )
    return {
        "name": served.name,
        "versions": [str(v) for v in versions],
        "platform": served.record.model_type,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"task": served.description.task},
    }


#: The protocol datatype a column of each signature type is sent as.
COLUMN_DATATYPES = {"string": "BYTES", "boolean": "BOOL", "number": "FP64"}


def column_input(field: Field) -> dict[str, Any]:
    """One column of a model that takes a table: a ``[rows]`` input named as the column, as MLServer's
    ``pd`` content type sends it; its parameters say whether it takes null and, for strings, its categories."""
    parameters: dict[str, Any] = {"nullable": field.nullable}
    if field.type == "string":
        parameters["content_type"] = "str"
    if field.categories is not None:
        parameters["categories"] = [c if isinstance(c, (str, int, float, bool)) else str(c) for c in field.categories]
        parameters["closed"] = field.closed
    return {"name": field.name, "datatype": COLUMN_DATATYPES[field.type], "shape": [-1], "parameters": parameters}
