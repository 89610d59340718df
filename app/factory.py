"""The application factory: wiring only, no work at import time."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from app.adapters import AdapterSettings
from app.config import load_config
from app.extensions import ModelServeApi
from app.observability import configure_logging, register_request_ids
from app.plugin_manager import PluginSet, build_plugin_manager
from app.registry import ModelRegistry, TrustPolicy
from app.security.settings import auth_configured, check_startup, unverified_pickles_allowed
from app.state_store import build_state_store

log = logging.getLogger(__name__)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Services:
    """What the views need, built once per worker."""

    config: dict[str, Any]
    plugins: PluginSet
    registry: ModelRegistry


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. ``config`` overrides the YAML files and environment."""
    settings = load_config(config)
    configure_logging(settings["logging"]["level"], settings["logging"]["format"])
    check_startup(settings)
    limit_compute_threads(settings["runtime"]["compute_threads"])

    app = Flask("app")
    register_fast_predictions(app)  # innermost middleware: ProxyFix (rate_limits) wraps it
    app.config.update(
        MODELSERVE=settings,
        API_TITLE="modelserve",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        API_SPEC_OPTIONS={"info": {"description": "Prediction and model-management API of modelserve."}},
    )
    register_request_ids(app)
    register_hygiene(app, settings)
    register_cors(app, settings["security"])
    register_access_control_for(app, settings)
    register_swagger_assets(app)
    register_api(app)
    register_rate_limits_for(app, settings)
    register_services(app, settings)
    register_jobs(app, settings)
    register_metrics(app, settings)
    register_cli(app)
    return app


def limit_compute_threads(threads: int) -> None:
    """One compute thread per worker by default: workers already use every core.

    The environment covers libraries that start their thread pools later;
    threadpoolctl covers the ones already loaded.
    """
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def register_fast_predictions(app: Flask) -> None:
    """The prediction endpoints' WSGI fast lane (``api.fast_predictions``; see :mod:`app.fast_predict`)."""
    from app.fast_predict import FastPredictions

    app.wsgi_app = FastPredictions(app, app.wsgi_app)  # type: ignore[method-assign]


def register_hygiene(app: Flask, settings: Mapping[str, Any]) -> None:
    from app.hygiene import register_request_checks

    register_request_checks(app, settings["api"]["max_request_size"])


def register_cors(app: Flask, security: Mapping[str, Any]) -> None:
    """Answer cross-origin requests only from the configured origins, and only under /api/."""
    if not security["enable_cors"]:
        return
    from flask_cors import CORS

    CORS(app, resources={r"/api/*": {"origins": security["cors_origins"]}}, expose_headers=["X-Request-ID"])


def register_access_control_for(app: Flask, settings: dict[str, Any]) -> None:
    """Authenticate (API keys, JWT) and check each endpoint's declared role."""
    from app.security.auth import Authenticator, configure_jwt
    from app.security.policy import register_access_control

    security = settings["security"]
    jwt_enabled = configure_jwt(app, security["jwt"])
    authenticator, enforce = Authenticator(security, jwt_enabled), auth_configured(security)
    register_access_control(app, authenticator, enforce=enforce)
    app.extensions["modelserve_auth"] = (authenticator, enforce)


def register_rate_limits_for(app: Flask, settings: dict[str, Any]) -> None:
    """After the blueprints: the limits attach to the view functions that declared a group."""
    from app.security.rate_limits import register_rate_limits

    app.extensions["modelserve_limiter"] = register_rate_limits(app, settings["security"])


def register_api(app: Flask) -> None:
    from app.api.adapters.resources import blp as adapters_blp
    from app.api.audit.resources import blp as audit_blp
    from app.api.fields import feature_row_openapi
    from app.api.jobs.resources import blp as jobs_blp
    from app.api.models.resources import blp as models_blp
    from app.api.predictions.resources import blp as predictions_blp
    from app.api.system.resources import build_blueprint as build_system_blueprint

    api = ModelServeApi(app)
    api.ma_plugin.converter.add_attribute_function(feature_row_openapi)
    key_header = app.config["MODELSERVE"]["security"]["api_key_header"]
    api.spec.components.security_scheme("ApiKeyAuth", {"type": "apiKey", "in": "header", "name": key_header})
    api.spec.components.security_scheme("BearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for blueprint in (predictions_blp, models_blp, adapters_blp, audit_blp, jobs_blp):
        api.register_blueprint(blueprint)
    settings = app.config["MODELSERVE"]
    api.register_blueprint(build_system_blueprint(settings["monitoring"], settings["security"]["metrics_require_auth"]))


def register_services(app: Flask, settings: dict[str, Any]) -> None:
    plugin_dir = Path(settings["plugins"]["directory"])
    runtime = settings["runtime"]
    adapter_settings = AdapterSettings(
        compute_threads=runtime["compute_threads"],
        compiled_trees=runtime["compiled_trees"],
        compiled_trees_cache=Path(settings["registry"]["state_directory"]) / "compiled-trees",
    )
    plugins = build_plugin_manager(plugin_dir, adapter_settings)
    store = build_state_store(settings["registry"])
    trust = TrustPolicy(
        trusted=frozenset(settings["security"]["trusted_models"]),
        allow_unverified=unverified_pickles_allowed(settings),
    )
    registry = ModelRegistry(store, plugins, settings["models"], settings["registry"]["sync_interval_ms"], trust)
    app.extensions["modelserve"] = Services(config=settings, plugins=plugins, registry=registry)

    @app.before_request
    def _warm_models() -> None:
        registry.warm()


def register_jobs(app: Flask, settings: dict[str, Any]) -> None:
    """Batch-scoring jobs; the executor starts in each gunicorn worker (post_worker_init) or on first use."""
    from app.jobs.service import build_job_service

    app.extensions["modelserve_jobs"] = build_job_service(app, settings)


def register_swagger_assets(app: Flask) -> None:
    from app.docs_assets import register_swagger_assets as register

    register(app)


def register_metrics(app: Flask, settings: dict[str, Any]) -> None:
    from app.metrics import register_metrics as register

    register(app, settings)


def register_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
