"""Prometheus metrics, exact across gunicorn workers.

Under gunicorn, gunicorn.conf.py points ``PROMETHEUS_MULTIPROC_DIR`` at a
clean directory before the workers fork; every worker then writes its
samples there and whichever worker answers a scrape adds them all up
(prometheus_client's multiprocess mode). Without it (tests, the Flask
development server) the application's own registry is exposed.

Label values are bounded: ``endpoint`` is the route template
(``/api/v1/predict/{model_name}``, or ``unmatched`` for unknown URLs) and
``model_name`` only ever names a model this worker loaded from the registry
(``unknown`` otherwise), so no client can create series at will.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

from flask import current_app, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app import system_stats
from app.hookspecs import hookimpl
from app.multiprocess_metrics import MULTIPROC_ENV

UNMATCHED = "unmatched"
UNKNOWN_MODEL = "unknown"
#: 50 µs (a small linear model) to 10 s (a large batch on a big ensemble).
LATENCY_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_RULE_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


class Metrics:
    """The metric families of one application, and the few ways to record into them."""

    def __init__(self) -> None:
        if os.environ.get(MULTIPROC_ENV) and values.ValueClass is values.MutexValue:
            raise RuntimeError(
                f"prometheus_client was imported before {MULTIPROC_ENV} was set: "
                "worker metrics would not be shared (import it only after fork)."
            )
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered.", ["method", "endpoint", "status"], registry=r
        )
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_duration = Histogram(
            "prediction_duration_seconds",
            "Time the model took for one prediction call (one row or one batch).",
            ["model_name"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "model_predictions_total",
            "Rows predicted, by outcome (error: the model itself failed).",
            ["model_name", "status"],
            registry=r,
        )
        gauge = functools.partial(Gauge, registry=r, multiprocess_mode="livemostrecent")
        self.active_models = gauge("active_models_gauge", "Models the server serves (shared desired state).")
        self.memory = gauge("memory_usage_bytes", "Resident memory of the server's processes (master and workers).")
        self.cpu = gauge(
            "cpu_usage_percent", "CPU used by the server's processes since the previous reading (100 = one core)."
        )
        self.jobs = gauge("jobs", "Batch-scoring jobs by state (the shared job store).", ["state"])
        self.model_loads = Counter(
            "model_loads_total", "Model versions loaded into a worker's memory.", ["model_name", "status"], registry=r
        )
        self.model_load_duration = Histogram(
            "model_load_duration_seconds",
            "Time to load a model version (file read, checks, trial prediction).",
            ["model_name"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.model_unloads = Counter(
            "model_unloads_total",
            "Model versions dropped from a worker's memory.",
            ["model_name", "reason"],
            registry=r,
        )
        self.rate_limit_rejections = Counter(
            "rate_limit_rejections_total", "Requests refused by the rate limiter (429).", ["endpoint"], registry=r
        )
        self.rate_limit_storage_up = Gauge(
            "rate_limit_storage_up",
            "0 while a worker counts rate limits alone because their Redis is unreachable (the lowest worker's value).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.rate_limit_storage_up.set(1)
        self.rate_limit_storage_outages = Counter(
            "rate_limit_storage_outages_total",
            "Times a worker lost the rate limits' Redis and fell back to counting alone.",
            registry=r,
        )
        self._models: set[str] = set()
        #: Labelled children by label values: ``labels()`` validates and locks on every call.
        self._children: dict[tuple, Any] = {}
        self._cpu = system_stats.CpuMeter()

    # --- recording ----------------------------------------------------------

    def model_label(self, name: str) -> str:
        """``name`` when this worker loaded a model of that name, else ``unknown``."""
        return name if name in self._models else UNKNOWN_MODEL

    def _child(self, family: Any, *values: str) -> Any:
        key = (id(family), *values)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 10_000:  # label values are bounded; this only guards memory
                self._children.clear()
            child = self._children[key] = family.labels(*values)
        return child

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float | None) -> None:
        self._child(self.requests, method, endpoint, str(status)).inc()
        if seconds is not None:
            self._child(self.request_duration, method, endpoint).observe(seconds)

    def observe_prediction(self, model_name: str, seconds: float, rows: int, ok: bool) -> None:
        label = self.model_label(model_name)
        self._child(self.predictions, label, "success" if ok else "error").inc(rows)
        if ok:
            self._child(self.prediction_duration, label).observe(seconds)

    def observe_rate_limit_rejection(self, endpoint: str) -> None:
        self._child(self.rate_limit_rejections, endpoint).inc()

    def observe_rate_limit_storage(self, up: bool) -> None:
        """The rate limits' Redis was lost (``up`` False: limits counted per worker) or came back."""
        self.rate_limit_storage_up.set(1 if up else 0)
        if not up:
            self.rate_limit_storage_outages.inc()

    def observe_model_load(self, name: str, seconds: float | None, ok: bool = True) -> None:
        if ok:
            self._models.add(name)
        label = self.model_label(name)
        self.model_loads.labels(label, "success" if ok else "error").inc()
        if seconds is not None:
            self.model_load_duration.labels(label).observe(seconds)

    def observe_model_unload(self, name: str, reason: str) -> None:
        self.model_unloads.labels(self.model_label(name), reason).inc()

    def refresh_gauges(self, active_models: int, jobs_by_state: Mapping[str, int] | None = None) -> None:
        """Set the gauges that are read rather than counted; called before each scrape."""
        self.active_models.set(active_models)
        for state, count in (jobs_by_state or {}).items():
            self.jobs.labels(state).set(count)
        processes = system_stats.server_processes()
        self.memory.set(system_stats.memory_usage_bytes(processes))
        self.cpu.set(self._cpu.percent(processes))

    # --- reading ------------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The text format Prometheus scrapes (OpenMetrics when asked for), and its content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self._source()), content_type

    def _source(self) -> CollectorRegistry:
        """This worker's registry, or every worker's samples when multiprocess."""
        if not os.environ.get(MULTIPROC_ENV):
            return self.registry
        source = CollectorRegistry()
        MultiProcessCollector(source)
        return source

    def totals(self) -> dict[str, int]:
        """Requests, predictions and failed predictions so far: all workers' when multiprocess."""
        source = self._source()
        sums = {"requests": 0.0, "predictions": 0.0, "prediction_errors": 0.0}
        for family in source.collect():
            for sample in family.samples:
                if sample.name == "http_requests_total":
                    sums["requests"] += sample.value
                elif sample.name == "model_predictions_total":
                    sums["predictions"] += sample.value
                    if sample.labels.get("status") == "error":
                        sums["prediction_errors"] += sample.value
        return {key: int(value) for key, value in sums.items()}


class ModelLifecycleMetrics:
    """An internal plugin: counts loads and unloads through the ``model_loaded``/``model_unloaded`` hooks."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    @hookimpl
    def model_loaded(self, name: str, info: Mapping[str, Any]) -> None:
        seconds = info.get("load_seconds")
        self.metrics.observe_model_load(name, float(seconds) if seconds is not None else None)

    @hookimpl
    def model_unloaded(self, name: str, reason: str) -> None:
        self.metrics.observe_model_unload(name, reason)

    @hookimpl
    def model_load_failed(self, name: str, error: str) -> None:
        self.metrics.observe_model_load(name, None, ok=False)


def endpoint_label() -> str:
    """The current request's route template (``/api/v1/predict/{model_name}``), or ``unmatched``."""
    rule = request.url_rule
    if rule is None and isinstance(request.routing_exception, MethodNotAllowed):
        rule = _rule_for_another_method(request.routing_exception)
    return _template(rule.rule) if rule is not None else UNMATCHED


def _rule_for_another_method(error: MethodNotAllowed) -> Any:
    """A 405's path did match a route, only not for this method: find that route."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in error.valid_methods or ():
        try:
            return adapter.match(method=method, return_rule=True)[0]
        except HTTPException:
            continue
    return None


@functools.lru_cache(maxsize=512)
def _template(rule: str) -> str:
    return _RULE_VARIABLE.sub(r"{\1}", rule)


def build_metrics(plugins: Any) -> Metrics:
    """The application's metrics, counting the models' lifecycle through ``plugins``' hooks.

    Requests are counted by :mod:`app.pipeline`; the metrics endpoint is a resource of :mod:`app.api.system`.
    """
    disable_created_metrics()  # the *_created series double the output for nothing a dashboard uses
    metrics = Metrics()
    plugins.manager.register(ModelLifecycleMetrics(metrics), name="modelserve.metrics")
    return metrics
