"""Health and readiness, answered truthfully.

Health (``GET /api/v1/health``) reports the state store, the external
services in use (Redis), the models this worker holds, memory and disk
against the ``health`` thresholds; only ``unhealthy`` is a 503. A lost Redis
is ``degraded``: predictions are still served from the last state read.
Readiness (``/ready``) is what a load balancer should route by: this worker
knows which models to serve (it warmed up from the shared state, or from the
copy this machine saved while Redis is away), and the
default model (and every model in ``health.required_models``) is loaded in
this worker and predicts a trial row right now. A lost Redis leaves a serving
worker ready: every replica shares that Redis, and taking them all out of the
load balancer would turn a degraded service into none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from werkzeug.exceptions import HTTPException

from app import __version__, system_stats
from app.dependencies import Outage
from app.errors import ServiceUnavailable
from app.inference import utc_timestamp
from app.model_input import trial_input
from app.registry import ModelRegistry, ServedModel
from app.storage_faults import storage_check

log = logging.getLogger(__name__)

#: An external service and a check that asks it now.
Dependency = tuple[Outage, Callable[[], bool]]

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_SEVERITY = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
#: What ``/predict`` without ``model_name`` serves.
DEFAULT_MODEL = "default"


def worst(*statuses: str) -> str:
    return max(statuses, key=_SEVERITY.__getitem__)


def by_threshold(used_percent: float, degraded: float, unhealthy: float) -> str:
    """``degraded`` above the first threshold, ``unhealthy`` above the second."""
    if used_percent > unhealthy:
        return UNHEALTHY
    if used_percent > degraded:
        return DEGRADED
    return HEALTHY


def health_report(
    registry: ModelRegistry, settings: Mapping[str, Any], dependencies: Sequence[Dependency] = ()
) -> dict[str, Any]:
    """The spec's health body: ``status`` is the worst of the checks.

    ``dependencies`` are the external services in use (Redis), each asked now:
    one that does not answer makes the server ``degraded`` (it still serves)
    and is named in ``checks.dependencies``.
    """
    limits = settings["health"]
    memory = round(system_stats.memory_used_percent(), 1)
    disk = round(system_stats.disk_used_percent(_existing(Path(settings["registry"]["state_directory"]))), 1)
    answers = ask_at_once([registry.store.ping, *(check for _, check in dependencies)])
    external = [outage.report(reachable=answers[check]) for outage, check in dependencies]
    checks = {
        "database": database_status(registry, answers[registry.store.ping]),
        "dependencies": external,
        "models": _models_check(registry),
        "memory": {
            "used_percent": memory,
            "status": by_threshold(memory, limits["memory_degraded_percent"], limits["memory_unhealthy_percent"]),
        },
        "disk": {
            "used_percent": disk,
            "status": by_threshold(disk, limits["disk_degraded_percent"], limits["disk_unhealthy_percent"]),
        },
        "storage": storage_check(written_paths(settings)),
    }
    status = worst(
        checks["database"],
        checks["models"]["status"],
        checks["memory"]["status"],
        checks["disk"]["status"],
        checks["storage"]["status"],
        *(DEGRADED for dependency in external if dependency["status"] != HEALTHY),
    )
    return {"status": status, "timestamp": utc_timestamp(), "checks": checks, "version": __version__}


def ask_at_once(checks: Sequence[Callable[[], bool]]) -> dict[Callable[[], bool], bool]:
    """Each distinct check's answer, the checks asked together: a silent Redis costs health one
    client timeout, not one per store that uses it."""
    distinct = list(dict.fromkeys(checks))
    if len(distinct) == 1:
        return {distinct[0]: distinct[0]()}
    with ThreadPoolExecutor(len(distinct), thread_name_prefix="health") as pool:
        return dict(zip(distinct, pool.map(lambda check: check(), distinct), strict=True))


def database_status(registry: ModelRegistry, reachable: bool) -> str:
    """healthy: the state store answers (``reachable``); degraded: it does not, and this worker serves the
    state it read last (or the copy this machine saved); unhealthy: it does not, and it has no state to serve."""
    if reachable:
        return HEALTHY
    return DEGRADED if registry.warmed else UNHEALTHY


def written_paths(settings: Mapping[str, Any]) -> list[Path]:
    """Where the server writes: the state directory, and the jobs' output directory when jobs run."""
    paths = [Path(settings["registry"]["state_directory"])]
    if settings.get("jobs"):
        paths.append(Path(settings["jobs"]["output_directory"]))
    return paths


def _models_check(registry: ModelRegistry) -> dict[str, Any]:
    """Healthy when the default model serves; degraded when only others do; unhealthy with none."""
    try:
        registry.get(DEFAULT_MODEL)
        status = HEALTHY
    except Exception as exc:  # a health check reports failures, it does not become one
        log.warning("health: the default model cannot serve: %s", _reason(exc))
        status = DEGRADED if registry.loaded_count() else UNHEALTHY
    return {"loaded": registry.loaded_count(), "status": status}


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the disk it will be written on)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def readiness_report(registry: ModelRegistry, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ready body, or raise :class:`ServiceUnavailable` naming every reason."""
    problems: list[str] = []
    outage = registry.store.dependency
    # A Redis known to be down is not asked again: a silent one would hold the load balancer's probe.
    database = database_status(registry, False if outage is not None and outage.down else registry.store.ping())
    if database == UNHEALTHY:
        problems.append("the state store is unreachable and this worker has not read the state yet")
    models: list[dict[str, Any]] = []
    for requested in dict.fromkeys([DEFAULT_MODEL, *settings["health"]["required_models"]]):
        try:
            served = registry.get(requested)
            trial = trial_prediction(served)
        except Exception as exc:
            resolved = registry.resolve_name(requested)
            if resolved == DEFAULT_MODEL:
                resolved = settings["models"]["default_model"]
            named = f"model '{requested}'" + (f" ({resolved})" if resolved != requested else "")
            problems.append(f"{named}: {_reason(exc).rstrip('.')}")
            models.append({"requested": requested, "status": "failed", "error": _reason(exc)})
            continue
        models.append(
            {"requested": requested, "name": served.name, "version": served.version, "status": "ready", "trial": trial}
        )
    checks = {"database": database, "models": models}
    if problems:
        raise ServiceUnavailable("Not ready: " + "; ".join(problems) + ".", errors={"checks": checks})
    return {"status": "ready", "timestamp": utc_timestamp(), "checks": checks}


def trial_prediction(served: ServedModel) -> str:
    """Predict one row of zeros with ``served``; return ``passed``, or ``skipped`` when the feature count is unknown.

    Calls the model directly, not :func:`app.inference.predict_rows`: a probe
    is not a prediction and must not show up in the counts or the logs.
    """
    row = trial_input(served)
    if row is None:
        return "skipped"
    predicted = np.asarray(served.model.predict(row))
    if predicted.shape[:1] != (1,):
        raise ValueError(f"the trial prediction returned shape {predicted.shape} for one row")
    if served.predict_proba is not None:
        proba = np.asarray(served.predict_proba(row), dtype=np.float64)
        if proba.shape[0] != 1 or not np.isfinite(proba).all():
            raise ValueError("the trial prediction's probabilities are not one finite row")
    return "passed"


def _reason(exc: Exception) -> str:
    if isinstance(exc, HTTPException):
        return str(exc.description)
    return f"{type(exc).__name__}: {exc}"[:300]
