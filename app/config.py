"""Configuration: defaults, then YAML files, then environment variables, then
explicit overrides -- merged, then validated once.

A bad value stops start-up with one line naming the key and where it came
from (``ConfigError``). gunicorn.conf.py calls :func:`load_config` too, so the
master refuses a bad file before any worker starts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import marshmallow as ma
import yaml
from marshmallow import validate

from app.errors import ConfigError
from app.jobs.settings import JobsSection
from app.security.settings import SecuritySection
from app.validation import model_name_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILES = (
    ("MODELSERVE_CONFIG", PROJECT_ROOT / "config" / "api_config.yaml"),
    ("MODELSERVE_SECURITY_CONFIG", PROJECT_ROOT / "config" / "security.yaml"),
)

#: The spec's environment variables and the key each one sets.
ENV_VARS = {
    "API_HOST": "api.host",
    "API_PORT": "api.port",
    "API_WORKERS": "api.workers",
    "LOG_LEVEL": "logging.level",
    "ENVIRONMENT": "environment",
    "MODEL_DIRECTORY": "models.model_directory",
    "ENABLE_METRICS": "monitoring.enable_metrics",
    "CORS_ENABLED": "security.enable_cors",
    # Secrets stay out of config files when these are used (e.g. from a Kubernetes Secret).
    "MODELSERVE_API_KEYS": "security.api_keys",
    "MODELSERVE_JWT_SECRET": "security.jwt.secret",
    "MODELSERVE_JWT_PUBLIC_KEY": "security.jwt.public_key",
    "MODELSERVE_RATE_LIMIT_STORAGE": "security.rate_limit_storage",
    "MODELSERVE_TRUSTED_PROXIES": "security.trusted_proxies",
    # Where the shared Redis is, from the environment of each pod (deploy/k8s/redis-urls.yaml): the
    # configuration files stay the same wherever Redis runs, and a URL may carry a password.
    "MODELSERVE_REGISTRY_REDIS_URL": "registry.redis_url",
    "MODELSERVE_JOBS_REDIS_URL": "jobs.redis_url",
    "MODELSERVE_JOBS_BROKER_URL": "jobs.broker_url",
    # Who runs async jobs and where their records live, per deployment (deploy/docker-compose.yml).
    "MODELSERVE_JOBS_BACKEND": "jobs.backend",
    "MODELSERVE_JOBS_STORE": "jobs.store",
}
#: Values taken as text, never parsed as YAML.
RAW_ENV_KEYS = {
    "api.host",
    "models.model_directory",
    "security.jwt.secret",
    "security.jwt.public_key",
    "security.rate_limit_storage",
    "registry.redis_url",
    "jobs.redis_url",
    "jobs.broker_url",
    "jobs.backend",
    "jobs.store",
}


_URL_PATH = validate.Regexp(r"^(/[A-Za-z0-9._-]+)+$", error="must be a URL path such as /api/v1/metrics.")


class _Section(ma.Schema):
    class Meta:
        unknown = ma.RAISE


def _about(description: str) -> dict[str, Any]:
    """A field's ``metadata``: the description the configuration reference (docs/) shows for its key."""
    return {"metadata": {"description": description}}


def _int(default: int, lo: int, hi: int | None = None, *, description: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, load_default=default, validate=validate.Range(min=lo, max=hi), **_about(description)
    )


def _percent(default: float, description: str) -> ma.fields.Float:
    return ma.fields.Float(load_default=default, validate=validate.Range(min=0, max=100), **_about(description))


def _bool(default: bool, description: str) -> ma.fields.Boolean:
    return ma.fields.Boolean(load_default=default, **_about(description))


def _str(default: str, description: str) -> ma.fields.String:
    return ma.fields.String(load_default=default, validate=validate.Length(min=1), **_about(description))


def _one_of(default: str, choices: list[str], description: str) -> ma.fields.String:
    return ma.fields.String(load_default=default, validate=validate.OneOf(choices), **_about(description))


class ApiSection(_Section):
    """How gunicorn serves the application (gunicorn.conf.py reads this section)."""

    host = _str(
        "127.0.0.1",
        "Address to listen on. 127.0.0.1 until an operator chooses to expose the server "
        "(the Docker image sets 0.0.0.0).",
    )
    port = _int(8000, 1, 65535, description="TCP port to listen on.")
    prefork_imports = _bool(
        True,
        "Import the web stack and modelserve's modules in the gunicorn master before it forks (imports only: no "
        "application, model or thread), so the workers share them instead of each importing its own copy.",
    )
    worker_malloc = _bool(
        True,
        "In each worker, glibc malloc keeps blocks over 128 KiB in their own mappings and gives free memory back "
        "after start-up, instead of holding what a batch freed (app.allocator).",
    )
    workers = _int(4, 1, 128, description="gunicorn worker processes; one per core suits this CPU-bound work.")
    timeout = _int(
        30,
        1,
        3600,
        description="Seconds a worker may spend on one request before gunicorn restarts it; also how long "
        "in-flight requests may take to finish when the server is stopped.",
    )
    max_request_size = _int(
        10 * 1024 * 1024, 1024, 1024**3, description="Largest request body in bytes; a larger one is refused with 413."
    )
    worker_class = _one_of(
        "gthread", ["sync", "gthread"], "gunicorn worker type: gthread keeps connections alive, sync closes each one."
    )
    threads = _int(
        16,
        1,
        64,
        description="Threads per gthread worker. A client that sends its request slowly holds one thread "
        "until it is complete, so a worker needs more threads than slow clients to keep answering the "
        "others (gunicorn.conf.py has the measurements); compute stays one thread (runtime.compute_threads).",
    )


class ModelsSection(_Section):
    """Which models are served, and how many each worker holds in memory."""

    auto_load = _bool(True, "Register the model directory's files at start-up (a sidecar may opt a file out).")
    model_directory = _str(
        "models/trained", "The directory models are loaded from; no model is read from anywhere else."
    )
    max_models = _int(
        5,
        1,
        10_000,
        description="Model versions each worker holds in memory; the least recently used is evicted, and "
        "reloads on its next use.",
    )
    model_timeout = _int(
        300,
        0,
        description="Seconds a model may go unused before its worker unloads it (the default model excepted); "
        "0: never.",
    )
    default_model = ma.fields.String(
        load_default="iris_classifier",
        validate=model_name_validator(),
        **_about("The model the name 'default' resolves to, unless an alias named default says otherwise."),
    )
    allow_version_mismatch = _bool(
        False,
        "Serve models whose sidecar says they were trained with other library versions (flagged in their info "
        "and logged) instead of refusing them.",
    )


class LoggingSection(_Section):
    """Log lines on stderr: the application's and gunicorn's."""

    level = _one_of(
        "INFO", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], "Least severe level logged (any letter case)."
    )
    format = _one_of("json", ["json", "text"], "json: one JSON object per line; text: plain lines for a terminal.")
    access_log = _bool(True, "Write one line per request (gunicorn's access log).")

    @ma.pre_load
    def _upper_level(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("level"), str):
            data = {**data, "level": data["level"].upper()}
        return data


class MonitoringSection(_Section):
    """Where the metrics and health endpoints are served."""

    enable_metrics = _bool(True, "Collect Prometheus metrics and serve them at metrics_endpoint.")
    metrics_endpoint = ma.fields.String(
        load_default="/api/v1/metrics",
        validate=_URL_PATH,
        **_about("Path of the Prometheus metrics; must differ from health_endpoint."),
    )
    health_endpoint = ma.fields.String(
        load_default="/api/v1/health",
        validate=_URL_PATH,
        **_about("Path of the health report; liveness and readiness are served at <path>/live and <path>/ready."),
    )

    @ma.validates_schema
    def _distinct(self, data: dict[str, Any], **_: Any) -> None:
        if data["metrics_endpoint"].rstrip("/") == data["health_endpoint"].rstrip("/"):
            raise ma.ValidationError("must differ from health_endpoint.", field_name="metrics_endpoint")


class HealthSection(_Section):
    """Thresholds of ``GET /api/v1/health``: above ``*_degraded_percent`` a check is degraded
    (200), above ``*_unhealthy_percent`` unhealthy (503)."""

    memory_degraded_percent = _percent(
        85, "Memory use (of the container's limit when there is one) above which health is degraded."
    )
    memory_unhealthy_percent = _percent(95, "Memory use above which health is unhealthy (503).")
    disk_degraded_percent = _percent(
        85, "Use of the disk holding registry.state_directory above which health is degraded."
    )
    disk_unhealthy_percent = _percent(95, "Disk use above which health is unhealthy (503).")
    required_models = ma.fields.List(
        ma.fields.String(validate=model_name_validator()),
        load_default=list,
        **_about("Models that must load and pass a trial prediction for readiness, besides the default model."),
    )

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        for check in ("memory", "disk"):
            if data[f"{check}_degraded_percent"] > data[f"{check}_unhealthy_percent"]:
                raise ma.ValidationError(
                    f"must not be above {check}_unhealthy_percent.", field_name=f"{check}_degraded_percent"
                )


class PluginsSection(_Section):
    """Where drop-in adapter plugins are found."""

    directory = _str(
        "plugins", "Directory of drop-in plugin files (*.py; names starting with _ are skipped), beside the built-ins."
    )


class RegistrySection(_Section):
    """The shared state every worker and replica reads: which models, versions and aliases to serve."""

    backend = _one_of(
        "sqlite",
        ["sqlite", "redis"],
        "sqlite: a file in state_directory, for the workers of one machine; redis: for replicas on several machines.",
    )
    state_directory = _str(
        "var/state",
        "Where the server writes its state: the SQLite registry, the job records, the compiled-tree cache.",
    )
    redis_url = _str("redis://127.0.0.1:6379/0", "The Redis server of the redis backend.")
    redis_prefix = _str("modelserve", "Prefix of the registry's Redis keys, so that several servers can share one.")
    sync_interval_ms = _int(
        0,
        0,
        60_000,
        description="0: every request checks the shared generation counter (8 bytes of shared memory, or one "
        "Redis GET). A positive value lets a worker's view be that many milliseconds stale.",
    )


class RuntimeSection(_Section):
    """How the models compute."""

    compute_threads = _int(
        1,
        1,
        256,
        description="OpenMP, BLAS and XGBoost threads per worker. The workers already use every core: "
        "more threads per worker only compete with them.",
    )
    compiled_trees = _bool(
        False,
        "Serve tree ensembles through Treelite unless a sidecar says otherwise (pip install 'modelserve[trees]'); "
        "libraries compiled for them are cached in <registry.state_directory>/compiled-trees.",
    )
    tabular_kernel = _bool(
        True,
        "Serve a scikit-learn Pipeline of a ColumnTransformer (one-hot, imputed, scaled columns) and a linear model "
        "with NumPy from the request's columns, without a DataFrame, where it answers as scikit-learn does on trial "
        "rows when the model loads (a sidecar's tabular_kernel: false opts a model out).",
    )
    share_models = _bool(
        True,
        "Serve scikit-learn forests from one copy per machine: a file in <registry.state_directory>/shared-models "
        "that every worker maps read-only (a sidecar's share_memory: false opts a model out).",
    )


def _section(schema: type[ma.Schema]) -> ma.fields.Nested:
    return ma.fields.Nested(schema, load_default=lambda: schema().load({}))


class ConfigSchema(_Section):
    environment = _one_of(
        "development",
        ["development", "production", "testing"],
        "production refuses to start without credentials and loads pickles only when trusted; development "
        "and testing allow both, with warnings.",
    )
    api = _section(ApiSection)
    security = _section(SecuritySection)
    models = _section(ModelsSection)
    logging = _section(LoggingSection)
    monitoring = _section(MonitoringSection)
    health = _section(HealthSection)
    plugins = _section(PluginsSection)
    registry = _section(RegistrySection)
    runtime = _section(RuntimeSection)
    jobs = _section(JobsSection)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):  # an empty section sets nothing
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _set(tree: dict[str, Any], dotted: str, value: Any, sources: dict[str, str], source: str) -> None:
    """Set ``dotted`` to ``value`` and remember ``source`` as where it came from."""
    node = tree
    *parents, leaf = dotted.split(".")
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise ConfigError(
                f"invalid configuration: {where}: must be a mapping of keys, not {type(child).__name__} "
                f"(from {sources.get(where, source)})"
            )
        node = child
    node[leaf] = value
    sources[dotted] = source


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """Walk marshmallow's nested error dict down to the first leaf message."""
    if isinstance(messages, dict):
        key, inner = next(iter(messages.items()))
        return _first_error(inner, f"{prefix}{key}." if not isinstance(key, int) else prefix)
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], prefix)
    return prefix.removesuffix("_schema.").rstrip("."), str(messages)


class _LastLoaded:
    """The last configuration :func:`load_config` validated without overrides, and what it was read from.

    gunicorn.conf.py validates the configuration in the master; every worker's ``create_app()``
    then reads the same files and environment. A worker that finds them unchanged (the same text,
    the same variables) takes a copy of the master's result instead of parsing YAML again: the
    parser's code and objects are pages of the master the worker would otherwise write to, and so
    copy (reference counts, CPython's adaptive counters), once per worker.
    """

    def __init__(self) -> None:
        self.inputs: tuple[Any, ...] | None = None
        self.config: dict[str, Any] = {}


_last_loaded = _LastLoaded()


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the validated configuration as nested dicts, or raise :class:`ConfigError`.

    Layers, later winning: defaults, ``config/api_config.yaml`` (or the file
    named by ``MODELSERVE_CONFIG``), ``config/security.yaml`` (or
    ``MODELSERVE_SECURITY_CONFIG``), the spec's environment variables, and
    ``overrides`` (what ``create_app(config=...)`` receives).
    """
    environ = os.environ if environ is None else environ
    files = [
        (path, _read_text(path))
        for env_name, default_path in DEFAULT_CONFIG_FILES
        for path in [Path(environ[env_name]) if environ.get(env_name) else default_path]
        if environ.get(env_name) or path.exists()
    ]
    variables = {name: environ[name] for name in ENV_VARS if environ.get(name)}
    inputs = (tuple((str(path), text) for path, text in files), tuple(sorted(variables.items())))
    if not overrides and _last_loaded.inputs == inputs:
        return copy.deepcopy(_last_loaded.config)

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def apply(layer: Mapping[str, Any], source: str) -> None:
        for dotted, value in _flatten(layer).items():
            _set(merged, dotted, copy.deepcopy(value), sources, source)

    for path, text in files:
        apply(_parse_yaml(text, path), str(path))
    for env_name, raw in variables.items():
        dotted = ENV_VARS[env_name]
        value = raw if dotted in RAW_ENV_KEYS else _parse_env(raw)
        _set(merged, dotted, value, sources, f"environment variable {env_name}")
    if overrides:
        apply(overrides, "create_app(config=...)")

    try:
        config = ConfigSchema().load(merged)
    except ma.ValidationError as exc:
        key, message = _first_error(exc.messages)
        source = next(
            (sources[k] for k in (key, *_parents(key)) if k in sources),
            _source_of_section(key, sources),
        )
        raise ConfigError(f"invalid configuration: {key}: {message} (from {source})") from None
    if not overrides:
        _last_loaded.inputs, _last_loaded.config = inputs, copy.deepcopy(config)
    return config


def _parse_env(raw: str) -> Any:
    """Read an environment value the way YAML would ("8000" -> 8000, "true" -> True)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _parents(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _source_of_section(key: str, sources: Mapping[str, str]) -> str:
    section = key.split(".")[0]
    found = {src for k, src in sources.items() if k == section or k.startswith(section + ".")}
    return ", ".join(sorted(found)) or "defaults"
