"""``/models``: list, load, unload, describe, alias and roll back models; ``/aliases``."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.faults import writes_shared_state
from app.api.links import link, model_links
from app.api.models.schemas import (
    AliasListSchema,
    AliasRequestSchema,
    AliasSchema,
    LoadModelRequestSchema,
    LoadModelResponseSchema,
    ModelInfoSchema,
    ModelListSchema,
    RollbackRequestSchema,
    RollbackResponseSchema,
    TrustRequestSchema,
    TrustResponseSchema,
    UnloadModelResponseSchema,
    VersionQuerySchema,
)
from app.api.predictions.resources import check_model_name
from app.desired_state import DEFAULT_ALIAS
from app.extensions import ModelServeBlueprint
from app.registry.info import model_info, model_summary
from app.security.access import current_actor
from app.security.policy import requires
from app.services import services

blp = ModelServeBlueprint("models", __name__, url_prefix="/api/v1", description="Model management.")


@blp.route("/models")
class Models(MethodView):
    @requires("predict")
    @blp.response(200, ModelListSchema)
    @blp.doc(responses={200: {"links": model_links("$response.body#/default_model")}})
    def get(self) -> dict[str, Any]:
        """List the models available to predict with, their versions and aliases."""
        registry = services().registry
        state = registry.state()
        return {
            "models": [model_summary(registry, state.models[name]) for name in sorted(state.models)],
            "count": len(state.models),
            "default_model": registry.resolve_name(DEFAULT_ALIAS),
            "max_models": registry.max_models,
            "loaded_count": registry.loaded_count(),
        }


@blp.route("/models/load")
class LoadModel(MethodView):
    @requires("admin", rate="model_management")
    @blp.arguments(
        LoadModelRequestSchema,
        example={"model_name": "custom_model", "model_path": "models/trained/custom_model.pkl"},
    )
    @blp.response(200, LoadModelResponseSchema)
    @blp.doc(responses={200: {"links": model_links("$response.body#/model/name")}})
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @writes_shared_state(blp)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load a model file from the model directory as the model's new current version, in every worker.

        The new version is loaded and passes a trial prediction before any
        request sees it; requests in flight finish on the old version. If the
        load fails, the previous version keeps serving. Loading the file that
        is already current changes nothing.
        """
        registry = services().registry
        served = registry.load(body["model_name"], body["model_path"], body["model_type"], actor=current_actor())
        return {
            "message": f"Model '{served.name}' version {served.version} loaded.",
            "model": model_info(registry, served),
        }


@blp.route("/models/trust")
class TrustModel(MethodView):
    @requires("admin", rate="model_management")
    @blp.arguments(TrustRequestSchema, example={"model_path": "custom_model.pkl"})
    @blp.response(200, TrustResponseSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @writes_shared_state(blp)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Approve a pickle, joblib or custom .py file for loading, by its current sha256.

        Loading such a file runs its code, so unless the server allows
        unverified pickles (development) it loads only files whose content an
        admin trusted here or listed in security.trusted_models. A changed file
        needs trusting again.
        """
        file, digest, added = services().registry.trust(body["model_path"], actor=current_actor())
        verb = "is now" if added else "was already"
        return {"message": f"{file} (sha256 {digest[:12]}...) {verb} trusted.", "file": file, "sha256": digest}


@blp.route("/models/<name:model_name>")
class Model(MethodView):
    @requires("admin", rate="model_management")
    @blp.response(200, UnloadModelResponseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    @writes_shared_state(blp)
    def delete(self, model_name: str) -> dict[str, Any]:
        """Stop serving a model (all its versions and aliases) in every worker; the file stays on disk."""
        check_model_name(model_name)
        services().registry.unload(model_name, actor=current_actor())
        return {"message": f"Model '{model_name}' unloaded.", "model_name": model_name}


@blp.route("/models/<name:model_name>/info")
class ModelInfo(MethodView):
    @requires("predict")
    @blp.arguments(VersionQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, ModelInfoSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, model_name: str, version: int | None) -> dict[str, Any]:
        """Describe a model version (default: current): adapter, class, task, features, labels, file, sha256."""
        check_model_name(model_name)
        registry = services().registry
        name = registry.resolve_name(model_name) if version is None else model_name
        served = registry.get(model_name) if version is None else registry.get_version(name, version)
        return model_info(registry, served)


@blp.route("/models/<name:model_name>/alias")
class ModelAlias(MethodView):
    @requires("admin", rate="model_management")
    @blp.arguments(AliasRequestSchema, example={"alias": "default", "version": None})
    @blp.response(200, AliasSchema)
    @blp.doc(
        responses={
            200: {"links": {"RemoveAlias": link("/api/v1/aliases/{alias}", "delete", alias="$response.body#/alias")}}
        }
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @writes_shared_state(blp)
    def post(self, body: dict[str, Any], model_name: str) -> dict[str, Any]:
        """Point an alias (``default`` included) at this model: its current version, or a pinned one.

        The target version is loaded and warmed before the alias moves.
        """
        check_model_name(model_name)
        registry = services().registry
        target = registry.set_alias(body["alias"], model_name, body["version"], actor=current_actor())
        return _alias_entry(body["alias"], target.model, target.version)


@blp.route("/models/<name:model_name>/rollback")
class ModelRollback(MethodView):
    @requires("admin", rate="model_management")
    @blp.arguments(RollbackRequestSchema, example={})
    @blp.response(200, RollbackResponseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @writes_shared_state(blp)
    def post(self, body: dict[str, Any], model_name: str) -> dict[str, Any]:
        """Make the previous version (or the one given) current again, warmed before the switch."""
        check_model_name(model_name)
        served = services().registry.rollback(model_name, body["version"], actor=current_actor())
        return {
            "message": f"Model '{model_name}' is now at version {served.version}.",
            "model_name": model_name,
            "version": served.version,
        }


@blp.route("/aliases")
class Aliases(MethodView):
    @requires("predict")
    @blp.response(200, AliasListSchema)
    def get(self) -> dict[str, Any]:
        """List the aliases and the version each one serves now."""
        registry = services().registry
        state = registry.state()
        entries = [_alias_entry(alias, t.model, t.version) for alias, t in sorted(state.aliases.items())]
        if DEFAULT_ALIAS not in state.aliases and DEFAULT_ALIAS not in state.models:
            entries.insert(0, _alias_entry(DEFAULT_ALIAS, registry.default_model, None))
        return {"aliases": entries}


@blp.route("/aliases/<name:alias>")
class Alias(MethodView):
    @requires("admin", rate="model_management")
    @blp.response(200, AliasSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @writes_shared_state(blp)
    def delete(self, alias: str) -> dict[str, Any]:
        """Remove an alias; ``default`` then falls back to ``models.default_model``."""
        check_model_name(alias)
        target = services().registry.remove_alias(alias, actor=current_actor())
        return {"alias": alias, "model_name": target.model, "version": target.version, "resolved_version": None}


def _alias_entry(alias: str, model: str, version: int | None) -> dict[str, Any]:
    resolved = services().registry.snapshot().resolve(alias, services().registry.default_model)
    return {
        "alias": alias,
        "model_name": model,
        "version": version,
        "resolved_version": resolved[1] if resolved else None,
    }
