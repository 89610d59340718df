"""deploy/docker-compose.yml: valid for Docker Compose, and the stack the spec describes."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
import yaml

from app.config import ENV_VARS, ApiSection, load_config
from tests.deploy.support import (
    COMPOSE_FILE,
    DEPLOY_DIR,
    NGINX_CONFIG,
    dockerfile_stages,
    nginx_directives,
    run_tool,
    tool,
)
from tests.helpers import PROJECT_ROOT


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_docker_compose_config_accepts_the_file():
    docker_compose = tool("docker-compose", "the Debian package docker-compose")
    for profile in ([], ["--profile", "jobs"]):
        result = run_tool(docker_compose, "-f", str(COMPOSE_FILE), *profile, "config", "-q", cwd=DEPLOY_DIR)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_spec_services():
    services = compose()["services"]
    assert set(services) == {"proxy", "api", "redis", "worker", "prometheus", "grafana"}


def test_api_builds_this_project_and_mounts_models_read_only():
    api = compose()["services"]["api"]
    build = api["build"]
    assert (DEPLOY_DIR / build["context"]).resolve() == PROJECT_ROOT
    assert (PROJECT_ROOT / build["dockerfile"]).is_file()
    assert "ports" not in api and api["expose"] == ["8000"], "reached through the proxy only"
    assert api["environment"]["ENVIRONMENT"] == "production"
    assert "../models:/app/models:ro" in api["volumes"]
    assert "../config:/app/config:ro" in api["volumes"]
    assert any(v.endswith(":/app/var") for v in api["volumes"]), "the registry state must be writable"


def test_nginx_in_front_of_the_api_with_the_repositorys_config():
    services = compose()["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:") and proxy["ports"] == ["8000:8000"]
    assert "./nginx/modelserve.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    config = NGINX_CONFIG.read_text()
    assert "server api:8000;" in config and "listen 8000;" in config
    # nginx sets X-Forwarded-For, so the application trusts exactly one proxy.
    assert services["api"]["environment"]["MODELSERVE_TRUSTED_PROXIES"] == "1"


def test_nginx_config_buffers_and_bounds_slow_clients():
    directives = nginx_directives(NGINX_CONFIG.read_text())
    assert directives["proxy_request_buffering"] == "on" and directives["proxy_buffering"] == "on"
    assert directives["client_header_timeout"] == "10s" and directives["client_body_timeout"] == "10s"
    # The application's own limit (api.max_request_size), in nginx's units.
    assert directives["client_max_body_size"] == f"{ApiSection().load({})['max_request_size'] // 2**20}m"
    headers = {value.split()[0]: value.split()[1] for value in directives.getall("proxy_set_header")}
    assert headers["X-Forwarded-For"] == "$remote_addr", "replaced, never appended to a client's value"
    assert headers["X-Request-ID"] == "$modelserve_request_id"
    assert "proxy_read_timeout" in directives


def test_api_healthcheck_asks_the_liveness_endpoint():
    check = compose()["services"]["api"]["healthcheck"]
    assert check["test"][0] == "CMD" and check["test"][1] == "python"
    assert "/api/v1/health/live" in check["test"][-1]
    assert {"interval", "timeout", "retries"} <= check.keys()


def test_celery_worker_waits_behind_the_jobs_profile():
    worker = compose()["services"]["worker"]
    assert worker["profiles"] == ["jobs"], "only for jobs.backend: celery (issue 4)"
    assert worker["command"][:3] == ["celery", "-A", "app.jobs.celery_app"]


@pytest.mark.parametrize("backend", ["embedded", "celery"])
def test_jobs_run_where_the_api_and_the_worker_both_see_them(backend):
    """The API and the worker read one job store and one set of job files, whichever runs the jobs."""
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    assert worker["environment"] == api["environment"] and worker["volumes"] == api["volumes"]
    environ = {
        name: _substituted(value, {"MODELSERVE_JOBS_BACKEND": backend}) for name, value in api["environment"].items()
    }
    jobs = load_config(environ={"MODELSERVE_CONFIG": str(PROJECT_ROOT / "config" / "api_config.yaml"), **environ})[
        "jobs"
    ]
    assert jobs["backend"] == backend
    assert jobs["store"] == "redis" and jobs["redis_url"].startswith("redis://redis:6379/")
    assert jobs["broker_url"].startswith("redis://redis:6379/") and jobs["broker_url"] != jobs["redis_url"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in api["volumes"]}
    for directory in (jobs["data_directory"], jobs["output_directory"], "var"):
        volume = mounts[str(PurePosixPath("/app") / directory)]
        assert volume in compose()["volumes"], f"{directory}: a named volume, written by the server"
    runtime = dockerfile_stages()[1][-1]
    (made,) = [r.args for r in runtime.all("RUN") if "chown" in r.args]
    for directory in ("/app/var", f"/app/{jobs['data_directory']}", f"/app/{jobs['output_directory']}"):
        assert made.count(directory) == 2, f"{directory} made and given to the server's user in the image"


def _substituted(value: str, environ: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}`` in ``value``, as ``docker compose`` would substitute it."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: environ.get(m.group(1)) or m.group(2), str(value))


def test_prometheus_mounts_the_scrape_config_and_alert_rules():
    prometheus = compose()["services"]["prometheus"]
    mounts = {v.split(":")[1]: (DEPLOY_DIR / v.split(":")[0]).resolve() for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY_DIR / "prometheus" / "prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == DEPLOY_DIR / "prometheus" / "alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert config["rule_files"] == ["alerts.yml"], "relative to the mounted config file"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "modelserve"]
    assert job["static_configs"][0]["targets"] == ["api:8000"]


def test_grafana_gets_provisioned_datasource_and_dashboards():
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: (DEPLOY_DIR / v.split(":")[0]).resolve() for v in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "modelserve.yml").read_text())["providers"][0]
    assert mounts[provider["options"]["path"]] == DEPLOY_DIR / "grafana" / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (DEPLOY_DIR / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).is_file()


def test_every_bind_mount_source_exists():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY_DIR / source).exists(), f"{name}: {source}"


def test_named_volumes_are_declared():
    spec = compose()
    used = {v.split(":")[0] for s in spec["services"].values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert used == set(spec["volumes"])


def test_every_variable_set_for_modelserve_is_one_it_reads():
    services = compose()["services"]
    for name in ("api", "worker"):
        unknown = set(services[name]["environment"]) - set(ENV_VARS)
        assert not unknown, f"{name}: {unknown}"
    assert services["worker"]["environment"] == services["api"]["environment"]
