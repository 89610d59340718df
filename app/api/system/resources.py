"""Health, liveness, readiness, status and metrics: for probes, operators and Prometheus.

The health and metrics paths come from the configuration
(``monitoring.health_endpoint``, ``monitoring.metrics_endpoint``), so the
blueprint is built per application. None of these endpoints needs
credentials: probes and scrapers send none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Response, request
from flask.views import MethodView

from app.api.system.schemas import HealthSchema, LivenessSchema, ReadinessSchema, StatusSchema
from app.extensions import ModelServeBlueprint
from app.health import UNHEALTHY, health_report, readiness_report
from app.inference import utc_timestamp
from app.security.policy import public, requires
from app.services import services
from app.status import job_counts, status_report

STATUS_PATH = "/api/v1/status"
METRICS_DOC = {
    "200": {
        "description": "Prometheus text format (OpenMetrics when the Accept header asks for it).",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


def build_blueprint(monitoring: Mapping[str, Any], metrics_require_auth: bool = False) -> ModelServeBlueprint:
    """The system endpoints at the configured paths; the metrics one only when metrics are enabled.

    Health probes never need credentials (Docker and Kubernetes send none);
    status shows configuration, so it needs ``admin``; metrics are open unless
    ``security.metrics_require_auth``.
    """
    metrics_access = requires("predict") if metrics_require_auth else public
    blp = ModelServeBlueprint("system", __name__, description="Health, readiness, status and metrics of the server.")
    health_path = monitoring["health_endpoint"]

    @blp.route(health_path)
    class Health(MethodView):
        @public
        @blp.response(200, HealthSchema)
        @blp.alt_response(503, schema=HealthSchema, description="Unhealthy: a check failed.")
        def get(self) -> tuple[dict[str, Any], int]:
            """Health in the spec's shape: state store, models, memory, disk (healthy/degraded 200, unhealthy 503)."""
            svc = services()
            report = health_report(svc.registry, svc.config, svc.dependencies())
            return report, 503 if report["status"] == UNHEALTHY else 200

    @blp.route(f"{health_path}/live")
    class Live(MethodView):
        @public
        @blp.response(200, LivenessSchema)
        def get(self) -> dict[str, Any]:
            """Liveness: the process answers (restart it when this fails)."""
            return {"status": "alive", "timestamp": utc_timestamp(), "worker_pid": os.getpid()}

    @blp.route(f"{health_path}/ready")
    class Ready(MethodView):
        @public
        @blp.response(200, ReadinessSchema)
        @blp.alt_response(503, response="SERVICE_UNAVAILABLE", description="Not ready; the message says why.")
        def get(self) -> dict[str, Any]:
            """Readiness: the state store answers and the default model predicts a trial row now."""
            svc = services()
            return readiness_report(svc.registry, svc.config)

    @blp.route(STATUS_PATH)
    class Status(MethodView):
        @requires("admin")
        @blp.response(200, StatusSchema)
        def get(self) -> dict[str, Any]:
            """Version, uptime, workers, this worker's models, request and prediction counts, config."""
            svc = services()
            return status_report(svc.registry, svc.config, svc.metrics)

    if monitoring["enable_metrics"]:

        @blp.route(monitoring["metrics_endpoint"])
        class Metrics(MethodView):
            @metrics_access
            @blp.doc(responses=METRICS_DOC)
            def get(self) -> Response:
                """Prometheus metrics of all workers together."""
                svc = services()
                metrics = svc.metrics
                assert metrics is not None  # the route exists only with metrics enabled
                metrics.refresh_gauges(active_models=len(svc.registry.records()), jobs_by_state=job_counts())
                body, content_type = metrics.exposition(request.headers.get("Accept"))
                return Response(body, content_type=content_type)

    return blp
