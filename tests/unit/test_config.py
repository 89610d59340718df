"""Configuration: defaults, YAML files, environment variables, overrides -- and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import ENV_VARS, ConfigError, load_config
from tests.helpers import PROJECT_ROOT


def write_yaml(path: Path, content: Any) -> Path:
    """Write ``content`` (a string as is, anything else as YAML) to ``path``."""
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "api_config.yaml", "")


@pytest.fixture
def security_file(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "security.yaml", "")


@pytest.fixture
def environ(config_file: Path, security_file: Path) -> dict[str, str]:
    """An environment naming two empty config files: nothing from the real environment or config/."""
    return {"MODELSERVE_CONFIG": str(config_file), "MODELSERVE_SECURITY_CONFIG": str(security_file)}


def config_error(environ: dict[str, str], overrides: dict[str, Any] | None = None) -> str:
    """Load, expect a ConfigError, and return its message after checking it is one line."""
    with pytest.raises(ConfigError) as caught:
        load_config(overrides, environ=environ)
    message = str(caught.value)
    assert message and "\n" not in message, message
    return message


# --- layering --------------------------------------------------------------


def test_defaults(environ):
    config = load_config(environ=environ)
    assert config["environment"] == "development"
    assert config["api"] == {
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 4,
        "timeout": 30,
        "max_request_size": 10 * 1024 * 1024,
        "worker_class": "gthread",
        "threads": 16,
        "prefork_imports": True,
        "worker_malloc": True,
    }
    assert config["models"] == {
        "auto_load": True,
        "model_directory": "models/trained",
        "max_models": 5,
        "model_timeout": 300,
        "default_model": "iris_classifier",
        "allow_version_mismatch": False,
    }
    assert config["security"]["enable_cors"] is False and config["security"]["cors_origins"] == []
    assert config["logging"] == {"level": "INFO", "format": "json", "access_log": True}
    assert config["monitoring"]["enable_metrics"] is True
    assert config["registry"] == {
        "backend": "sqlite",
        "state_directory": "var/state",
        "redis_url": "redis://127.0.0.1:6379/0",
        "redis_prefix": "modelserve",
        "sync_interval_ms": 0,
    }
    assert config["runtime"] == {
        "compute_threads": 1,
        "compiled_trees": False,
        "tabular_kernel": True,
        "share_models": True,
    }


def test_project_config_files_are_read_when_no_file_is_named():
    config = load_config(environ={})
    shipped_api = yaml.safe_load((PROJECT_ROOT / "config" / "api_config.yaml").read_text(encoding="utf-8"))
    shipped_security = yaml.safe_load((PROJECT_ROOT / "config" / "security.yaml").read_text(encoding="utf-8"))
    assert config["api"]["port"] == shipped_api["api"]["port"]
    assert config["models"]["max_models"] == shipped_api["models"]["max_models"]
    assert config["security"]["enable_cors"] == shipped_security["security"]["enable_cors"]


def test_yaml_files_layer_over_defaults_and_each_other(environ, config_file, security_file):
    write_yaml(config_file, {"api": {"port": 9000, "workers": 2}, "models": {"max_models": 3}})
    write_yaml(security_file, {"security": {"enable_cors": True, "cors_origins": ["http://a"]}, "api": {"port": 9100}})
    config = load_config(environ=environ)
    assert config["api"]["port"] == 9100  # the security file is read second
    assert config["api"]["workers"] == 2
    assert config["api"]["timeout"] == 30  # untouched keys keep their defaults
    assert config["models"]["max_models"] == 3
    assert config["security"] == {**config["security"], "enable_cors": True, "cors_origins": ["http://a"]}


def test_empty_model_serve_config_variable_means_the_default_file(environ):
    config = load_config(environ={**environ, "MODELSERVE_CONFIG": ""})
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "api_config.yaml").read_text(encoding="utf-8"))
    assert config["api"]["port"] == shipped["api"]["port"]


@pytest.mark.parametrize(
    ("variable", "raw", "section", "key", "expected"),
    [
        ("API_HOST", "0.0.0.0", "api", "host", "0.0.0.0"),
        ("API_PORT", "9001", "api", "port", 9001),
        ("API_WORKERS", "7", "api", "workers", 7),
        ("LOG_LEVEL", "debug", "logging", "level", "DEBUG"),
        ("ENVIRONMENT", "production", None, "environment", "production"),
        ("MODEL_DIRECTORY", "/srv/models", "models", "model_directory", "/srv/models"),
        ("MODEL_DIRECTORY", "123", "models", "model_directory", "123"),  # a path, never a number
        ("ENABLE_METRICS", "false", "monitoring", "enable_metrics", False),
        ("CORS_ENABLED", "true", "security", "enable_cors", True),
        ("CORS_ENABLED", "1", "security", "enable_cors", True),
    ],
)
def test_each_spec_environment_variable_overrides_its_key(environ, variable, raw, section, key, expected):
    config = load_config(environ={**environ, variable: raw})
    assert (config[section] if section else config)[key] == expected


def test_every_spec_environment_variable_is_covered():
    spec = {
        "API_HOST",
        "API_PORT",
        "API_WORKERS",
        "LOG_LEVEL",
        "ENVIRONMENT",
        "MODEL_DIRECTORY",
        "ENABLE_METRICS",
        "CORS_ENABLED",
    }
    secrets = {
        "MODELSERVE_API_KEYS",
        "MODELSERVE_JWT_SECRET",
        "MODELSERVE_JWT_PUBLIC_KEY",
        "MODELSERVE_RATE_LIMIT_STORAGE",
    }
    redis = {"MODELSERVE_REGISTRY_REDIS_URL", "MODELSERVE_JOBS_REDIS_URL", "MODELSERVE_JOBS_BROKER_URL"}
    proxies = {"MODELSERVE_TRUSTED_PROXIES"}  # set where a proxy is in front (deploy/docker-compose.yml)
    jobs = {"MODELSERVE_JOBS_BACKEND", "MODELSERVE_JOBS_STORE"}  # per deployment (deploy/docker-compose.yml)
    assert set(ENV_VARS) == spec | secrets | redis | proxies | jobs


def test_secret_variables_are_taken_as_text_and_keys_as_a_list(environ):
    digest = "ab" * 32
    config = load_config(
        environ={
            **environ,
            "MODELSERVE_JWT_SECRET": "1234567890" * 4,  # a number-looking secret stays a string
            "MODELSERVE_API_KEYS": f'[{{"name": "bot", "sha256": "{digest}", "roles": ["predict"]}}]',
        }
    )
    assert config["security"]["jwt"]["secret"] == "1234567890" * 4
    assert config["security"]["api_keys"] == [{"name": "bot", "sha256": digest, "roles": ["predict"]}]


def test_environment_beats_yaml(environ, config_file, security_file):
    write_yaml(config_file, {"api": {"port": 9000}, "logging": {"level": "ERROR"}})
    write_yaml(security_file, {"security": {"enable_cors": True}})
    config = load_config(environ={**environ, "API_PORT": "9002", "LOG_LEVEL": "warning", "CORS_ENABLED": "false"})
    assert config["api"]["port"] == 9002
    assert config["logging"]["level"] == "WARNING"
    assert config["security"]["enable_cors"] is False


def test_empty_environment_variable_is_ignored(environ, config_file):
    write_yaml(config_file, {"api": {"port": 9000}})
    assert load_config(environ={**environ, "API_PORT": ""})["api"]["port"] == 9000


def test_overrides_beat_environment_and_yaml(environ, config_file):
    write_yaml(config_file, {"api": {"port": 9000, "workers": 3}})
    config = load_config({"api": {"port": 9003}}, environ={**environ, "API_PORT": "9002", "API_HOST": "0.0.0.0"})
    assert config["api"]["port"] == 9003
    assert config["api"]["workers"] == 3
    assert config["api"]["host"] == "0.0.0.0"


def test_overrides_are_not_mutated(environ):
    overrides = {"models": {"max_models": 2}, "security": {"cors_origins": ["http://a"]}}
    config = load_config(overrides, environ=environ)
    config["security"]["cors_origins"].append("http://b")
    assert overrides == {"models": {"max_models": 2}, "security": {"cors_origins": ["http://a"]}}


# --- a worker reuses the master's result ------------------------------------


def count_yaml_parses(monkeypatch) -> list[int]:
    parses = [0]
    real = yaml.safe_load

    def counting(text):
        parses[0] += 1
        return real(text)

    monkeypatch.setattr("app.config.yaml.safe_load", counting)
    return parses


def test_unchanged_files_and_environment_are_not_parsed_again(environ, config_file, monkeypatch):
    write_yaml(config_file, {"api": {"port": 9001}})
    first = load_config(environ=environ)
    parses = count_yaml_parses(monkeypatch)
    again = load_config(environ=environ)
    assert again == first and parses == [0]
    again["api"]["port"] = 1  # a copy: what the next caller gets is unchanged
    assert load_config(environ=environ)["api"]["port"] == 9001


def test_a_changed_file_of_the_same_size_is_read_again(environ, config_file):
    write_yaml(config_file, "api:\n  port: 9001\n")
    assert load_config(environ=environ)["api"]["port"] == 9001
    write_yaml(config_file, "api:\n  port: 9002\n")
    assert load_config(environ=environ)["api"]["port"] == 9002


def test_a_changed_environment_variable_is_read_again(environ):
    assert load_config(environ={**environ, "API_PORT": "9001"})["api"]["port"] == 9001
    assert load_config(environ={**environ, "API_PORT": "9002"})["api"]["port"] == 9002
    assert load_config(environ=environ)["api"]["port"] == 8000


def test_overrides_neither_use_nor_replace_the_last_result(environ):
    assert load_config(environ=environ)["api"]["port"] == 8000
    assert load_config({"api": {"port": 9003}}, environ=environ)["api"]["port"] == 9003
    assert load_config(environ=environ)["api"]["port"] == 8000


def test_a_bad_file_is_refused_again_after_a_good_load(environ, config_file):
    load_config(environ=environ)
    write_yaml(config_file, {"api": {"port": 0}})
    assert "api.port" in config_error(environ)
    assert "api.port" in config_error(environ)


def test_an_empty_section_in_a_later_layer_changes_nothing(environ, config_file):
    write_yaml(config_file, {"api": {"port": 9000}})
    assert load_config({"api": {}}, environ=environ)["api"]["port"] == 9000


# --- one-line errors naming the key and the source ---------------------------


@pytest.mark.parametrize(
    ("content", "key", "text"),
    [
        ({"api": {"portx": 1}}, "api.portx", "Unknown field"),
        ({"apix": {"port": 1}}, "apix", "Unknown field"),
        ({"colour": "red"}, "colour", "Unknown field"),
        ({"api": {"port": "8000"}}, "api.port", "Not a valid integer"),
        ({"api": {"port": 8000.5}}, "api.port", "Not a valid integer"),
        ({"api": {"workers": True}}, "api.workers", "Not a valid integer"),
        ({"api": {"host": 127}}, "api.host", "Not a valid string"),
        ({"api": 5}, "api", "Invalid input type"),
        ({"api": ["port", 8000]}, "api", "Invalid input type"),
        ({"api": None}, "api", "null"),
        ({"api": {"port": 0}}, "api.port", "greater than or equal to 1"),
        ({"api": {"port": 70000}}, "api.port", "less than or equal to 65535"),
        ({"api": {"workers": 0}}, "api.workers", "greater than or equal to 1"),
        ({"api": {"worker_class": "gevent"}}, "api.worker_class", "Must be one of"),
        ({"models": {"model_timeout": -1}}, "models.model_timeout", "greater than or equal to 0"),
        ({"models": {"max_models": 0}}, "models.max_models", "greater than or equal to 1"),
        ({"models": {"default_model": "../etc"}}, "models.default_model", "Must be 1-64 letters"),
        ({"models": {"model_directory": ""}}, "models.model_directory", "Shorter than minimum length"),
        ({"logging": {"level": "VERBOSE"}}, "logging.level", "Must be one of"),
        ({"environment": "staging"}, "environment", "Must be one of"),
        ({"security": {"enable_cors": "maybe"}}, "security.enable_cors", "Not a valid boolean"),
        ({"registry": {"sync_interval_ms": -1}}, "registry.sync_interval_ms", "greater than or equal to 0"),
    ],
)
def test_bad_yaml_value_is_one_line_naming_key_and_file(environ, config_file, content, key, text):
    write_yaml(config_file, content)
    message = config_error(environ)
    assert message.startswith(f"invalid configuration: {key}: "), message
    assert text in message
    assert message.endswith(f"(from {config_file})")


def test_bad_value_in_the_security_file_names_that_file(environ, security_file):
    write_yaml(security_file, {"security": {"enable_corz": True}})
    message = config_error(environ)
    assert "security.enable_corz" in message and str(security_file) in message


def test_bad_override_names_create_app(environ):
    message = config_error(environ, {"models": {"max_models": "many"}})
    assert message.startswith("invalid configuration: models.max_models: ")
    assert message.endswith("(from create_app(config=...))")


@pytest.mark.parametrize(
    ("variable", "raw", "key"),
    [
        ("API_PORT", "abc", "api.port"),
        ("API_PORT", "0", "api.port"),
        ("API_PORT", "70000", "api.port"),
        ("API_PORT", "8000.5", "api.port"),
        ("API_PORT", "[1", "api.port"),
        ("API_WORKERS", "0", "api.workers"),
        ("API_WORKERS", "many", "api.workers"),
        ("LOG_LEVEL", "verbose", "logging.level"),
        ("ENVIRONMENT", "staging", "environment"),
        ("ENABLE_METRICS", "perhaps", "monitoring.enable_metrics"),
        ("CORS_ENABLED", "2", "security.enable_cors"),
        ("MODELSERVE_JOBS_BACKEND", "celeri", "jobs.backend"),
        ("MODELSERVE_JOBS_STORE", "postgres", "jobs.store"),
    ],
)
def test_bad_environment_variable_is_one_line_naming_key_and_variable(environ, variable, raw, key):
    message = config_error({**environ, variable: raw})
    assert message.startswith(f"invalid configuration: {key}: "), message
    assert message.endswith(f"(from environment variable {variable})")


def test_bad_key_in_a_file_is_blamed_on_the_file_not_a_good_environment_variable(environ, config_file):
    write_yaml(config_file, {"api": {"workers": 0}})
    message = config_error({**environ, "API_PORT": "9000"})
    assert "api.workers" in message and str(config_file) in message
    assert "API_PORT" not in message


def test_section_that_is_not_a_mapping_is_blamed_on_its_file(environ, config_file):
    write_yaml(config_file, {"api": 5})
    message = config_error({**environ, "API_PORT": "9000"})
    assert str(config_file) in message


def test_section_that_is_not_a_mapping_under_an_environment_variable_is_one_line(environ, config_file):
    write_yaml(config_file, {"api": 5})
    message = config_error({**environ, "API_PORT": "9000"})
    assert message.startswith("invalid configuration: api: must be a mapping")


def test_invalid_yaml_names_the_file(environ, config_file):
    write_yaml(config_file, "api: [1\nmodels:\n  - {\n")
    message = config_error(environ)
    assert str(config_file) in message and "not valid YAML" in message


@pytest.mark.parametrize("content", ["- 1\n- 2\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping_names_the_file(environ, config_file, content):
    write_yaml(config_file, content)
    message = config_error(environ)
    assert str(config_file) in message and "must hold a mapping" in message


@pytest.mark.parametrize("variable", ["MODELSERVE_CONFIG", "MODELSERVE_SECURITY_CONFIG"])
def test_missing_named_file_names_the_file(environ, tmp_path, variable):
    missing = tmp_path / "nowhere" / "config.yaml"
    message = config_error({**environ, variable: str(missing)})
    assert str(missing) in message and "cannot read" in message


# --- gunicorn.conf.py reads the same configuration ---------------------------

GUNICORN_PROBE = (
    "import runpy; ns = runpy.run_path('gunicorn.conf.py'); print(ns['bind'], ns['workers'], ns['timeout'])"
)


def run_gunicorn_conf(config_file: Path, security_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(MODELSERVE_CONFIG=str(config_file), MODELSERVE_SECURITY_CONFIG=str(security_file))
    return subprocess.run(
        [sys.executable, "-c", GUNICORN_PROBE],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gunicorn_conf_reads_the_same_config(config_file, security_file):
    write_yaml(config_file, {"api": {"host": "127.0.0.2", "port": 9123, "workers": 3, "timeout": 45}})
    result = run_gunicorn_conf(config_file, security_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["127.0.0.2:9123", "3", "45"]


def test_gunicorn_conf_refuses_a_bad_config_with_one_line(config_file, security_file):
    write_yaml(config_file, {"api": {"workers": 0}})
    result = run_gunicorn_conf(config_file, security_file)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "api.workers" in lines[0] and str(config_file) in lines[0]


def test_the_config_sections_do_not_import_the_loader():
    """No import cycle: the sections raise ConfigError without importing app.config, which imports them."""
    probe = (
        "import sys, app.security.settings, app.jobs.settings\n"
        "assert 'app.config' not in sys.modules, 'a config section imports app.config'\n"
        "from app.config import ConfigError\n"
        "from app.errors import ConfigError as moved\n"
        "assert ConfigError is moved\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
