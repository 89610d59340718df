"""The application factory: wiring only, no work at import time.

Every request is answered by one chain: Flask's dispatch, the request
pipeline's ``before_request`` function (:mod:`app.pipeline`: request id, body
checks, access check with its rate limit), the flask-smorest view, then the
``after_request`` function (headers, CORS, metrics).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, request

from app.adapters import AdapterSettings
from app.config import load_config
from app.extensions import ModelServeApi
from app.observability import configure_logging
from app.plugin_manager import build_plugin_manager
from app.registry import ModelRegistry, TrustPolicy
from app.security.settings import auth_configured, check_startup, unverified_pickles_allowed
from app.services import EXTENSION, Services
from app.state_store import build_state_store

log = logging.getLogger(__name__)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. ``config`` overrides the YAML files and environment."""
    settings = load_config(config)
    configure_logging(settings["logging"]["level"], settings["logging"]["format"])
    check_startup(settings)
    limit_compute_threads(settings["runtime"]["compute_threads"])

    app = Flask("app")
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
    svc = register_services(app, settings)
    register_proxy_fix(app, settings["security"])
    register_swagger_assets(app)
    register_api(app)
    register_pipeline_for(app, svc)
    register_jobs(app, svc)
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


def register_services(app: Flask, settings: dict[str, Any]) -> Services:
    """The plugins, the registry and the metrics: what the views and the hooks below use."""
    plugin_dir = Path(settings["plugins"]["directory"])
    runtime = settings["runtime"]
    adapter_settings = AdapterSettings(
        compute_threads=runtime["compute_threads"],
        compiled_trees=runtime["compiled_trees"],
        compiled_trees_cache=Path(settings["registry"]["state_directory"]) / "compiled-trees",
        tabular_kernel=runtime["tabular_kernel"],
        shared_models_dir=Path(settings["registry"]["state_directory"]) / "shared-models"
        if runtime["share_models"]
        else None,
    )
    plugins = build_plugin_manager(plugin_dir, adapter_settings)
    store = build_state_store(settings["registry"])
    trust = TrustPolicy(
        trusted=frozenset(settings["security"]["trusted_models"]),
        allow_unverified=unverified_pickles_allowed(settings),
    )
    registry = ModelRegistry(store, plugins, settings["models"], settings["registry"]["sync_interval_ms"], trust)
    svc = app.extensions[EXTENSION] = Services(config=settings, plugins=plugins, registry=registry)
    if settings["monitoring"]["enable_metrics"]:
        from app.metrics import build_metrics

        svc.metrics = build_metrics(plugins)
    return svc


def register_proxy_fix(app: Flask, security: Mapping[str, Any]) -> None:
    """Client addresses from X-Forwarded-For, only behind ``security.trusted_proxies`` proxies."""
    if security["trusted_proxies"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = security["trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]


def register_api(app: Flask) -> None:
    from app.api.adapters.resources import blp as adapters_blp
    from app.api.audit.resources import blp as audit_blp
    from app.api.fields import features_openapi
    from app.api.jobs.resources import blp as jobs_blp
    from app.api.models.resources import blp as models_blp
    from app.api.predictions.resources import blp as predictions_blp
    from app.api.system.resources import build_blueprint as build_system_blueprint
    from app.api.v2 import register as register_v2
    from app.validation import NameConverter, name_converter_openapi

    app.url_map.converters["name"] = NameConverter  # model names and aliases in URLs
    api = ModelServeApi(app)
    api.register_converter(NameConverter, name_converter_openapi)
    api.ma_plugin.converter.add_attribute_function(features_openapi)
    key_header = app.config["MODELSERVE"]["security"]["api_key_header"]
    api.spec.components.security_scheme("ApiKeyAuth", {"type": "apiKey", "in": "header", "name": key_header})
    api.spec.components.security_scheme("BearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for blueprint in (predictions_blp, models_blp, adapters_blp, audit_blp, jobs_blp):
        api.register_blueprint(blueprint)
    settings = app.config["MODELSERVE"]
    api.register_blueprint(build_system_blueprint(settings["monitoring"], settings["security"]["metrics_require_auth"]))
    register_v2(api)  # the Open Inference Protocol beside /api/v1
    from app.storage_faults import register_storage_errors

    register_storage_errors(app, api)  # a full or read-only disk: 507 / 503, not 500


def register_pipeline_for(app: Flask, svc: Services) -> None:
    """After the blueprints, before any other hook: the work around every view (:mod:`app.pipeline`).

    The access check authenticates (API keys, JWT), checks each endpoint's role and counts its rate limit.
    """
    from app.cors import CorsPolicy
    from app.pipeline import RequestPipeline, register_pipeline
    from app.security.access import AccessControl
    from app.security.auth import Authenticator, configure_jwt
    from app.security.policy import AccessTable

    security = svc.config["security"]
    jwt_enabled = configure_jwt(app, security["jwt"])
    svc.access = AccessControl(
        table=AccessTable(app),
        authenticator=Authenticator(security, jwt_enabled),
        enforce=auth_configured(security),
        rate_limits=build_rate_limits(svc) if security["rate_limit_enabled"] else None,
    )
    max_request_size = svc.config["api"]["max_request_size"]
    app.config["MAX_CONTENT_LENGTH"] = max_request_size  # Flask refuses larger bodies as they are read
    cors = CorsPolicy(security["cors_origins"]) if security["enable_cors"] else None
    register_pipeline(app, RequestPipeline(svc.registry, svc.access, max_request_size, svc.metrics, cors))


def build_rate_limits(svc: Services) -> Any:
    from app.metrics import endpoint_label
    from app.security.rate_limits import build_rate_limits as build

    metrics = svc.metrics

    def breached(limit: str, key: str) -> None:
        log.warning("rate limit %s exceeded for %s on %s", limit, key, request.path)
        if metrics is not None:
            metrics.observe_rate_limit_rejection(endpoint_label())

    state_directory = Path(svc.config["registry"]["state_directory"])
    on_change = metrics.observe_rate_limit_storage if metrics is not None else None
    return build(svc.config["security"], breached, state_directory, on_change)


def register_jobs(app: Flask, svc: Services) -> None:
    """Batch-scoring jobs; the executor starts in each gunicorn worker (post_worker_init) or on first use."""
    from app.jobs.service import build_job_service

    svc.jobs = build_job_service(app, svc.config, svc.registry, svc.metrics)


def register_swagger_assets(app: Flask) -> None:
    from app.docs_assets import register_swagger_assets as register

    register(app)


def register_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
