"""Prometheus files checked by promtool, alert rules unit-tested, and a real
Prometheus scraping a real modelserve and answering a query about it."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import requests
import yaml

from tests.deploy.support import (
    ALERT_RULES,
    PROMETHEUS_CONFIG,
    PrometheusServer,
    alert_rules,
    dashboard_expressions,
    poll_until,
    run_tool,
    tool,
)
from tests.factories import write_iris_set
from tests.helpers import GunicornServer

RULES_TEST = Path(__file__).with_name("prometheus_rules_test.yml")
PACKAGE = "the Debian package prometheus"


def test_promtool_check_config():
    result = run_tool(
        tool("promtool", PACKAGE), "check", "config", PROMETHEUS_CONFIG.name, cwd=PROMETHEUS_CONFIG.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    result = run_tool(tool("promtool", PACKAGE), "check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    """Each alert fires on the series in prometheus_rules_test.yml, and only on those."""
    result = run_tool(tool("promtool", PACKAGE), "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_four_alerts_of_the_issue():
    names = {rule["alert"] for rule in alert_rules()}
    assert names == {
        "ModelserveInstanceDown",
        "ModelserveHighErrorRate",
        "ModelserveHighPredictionLatencyP99",
        "ModelserveModelLoadFailures",
    }
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text()))
    assert tested == names, "every alert has a promtool unit test"
    latency = next(r for r in alert_rules() if r["alert"] == "ModelserveHighPredictionLatencyP99")
    assert "prediction_duration_seconds_bucket" in latency["expr"] and "model_name" in latency["expr"]


def loopback_config(target: str) -> dict:
    """deploy/prometheus/prometheus.yml, scraping ``target`` every second, with the real alert rules."""
    config = copy.deepcopy(yaml.safe_load(PROMETHEUS_CONFIG.read_text()))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / name) for name in config["rule_files"]]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "modelserve"]
    assert len(jobs) == 1
    jobs[0].update(scrape_interval="1s", scrape_timeout="1s")
    jobs[0]["static_configs"][0]["targets"] = [target]
    config["scrape_configs"] = jobs
    return config


@pytest.mark.integration
def test_dashboard_and_alert_queries_are_valid_promql(tmp_path):
    """Prometheus itself parses every query of the Grafana dashboard and every alert expression."""
    binary = tool("prometheus", PACKAGE)
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": []}
    with PrometheusServer(binary, tmp_path, config) as prometheus:
        for expr in dashboard_expressions() + [rule["expr"] for rule in alert_rules()]:
            query = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
            response = requests.get(prometheus.url + "/api/v1/query", params={"query": query}, timeout=10)
            assert response.status_code == 200, f"{query}\n{response.text}"


@pytest.mark.integration
def test_real_prometheus_scrapes_modelserve(tmp_path):
    binary = tool("prometheus", PACKAGE)
    model_dir = write_iris_set(tmp_path / "models")
    config = {"models": {"model_directory": str(model_dir)}, "logging": {"level": "WARNING"}}
    with GunicornServer(tmp_path, config, workers=2) as server:
        for _ in range(3):
            assert server.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200
        target = f"127.0.0.1:{server.port}"
        with PrometheusServer(binary, tmp_path, loopback_config(target)) as prometheus:

            def scrape_state() -> str:
                targets = prometheus.api("targets")["activeTargets"]
                return "\n".join(f"{t['scrapeUrl']}: {t['health']} {t['lastError']}" for t in targets)

            poll_until(
                lambda: prometheus.query('up{job="modelserve"} == 1'),
                "a successful scrape of modelserve's /api/v1/metrics",
                describe=scrape_state,
            )
            series = poll_until(
                lambda: prometheus.query('http_requests_total{job="modelserve", endpoint="/api/v1/predict"}'),
                "http_requests_total for /api/v1/predict in Prometheus",
                describe=scrape_state,
            )
            assert sum(float(s["value"][1]) for s in series) >= 3, series
            assert {s["metric"]["instance"] for s in series} == {target}

            def rules_evaluated() -> list:
                rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
                return rules if rules and all(not r["lastEvaluation"].startswith("0001") for r in rules) else []

            rules = poll_until(rules_evaluated, "the alert rules to be evaluated")
            assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
            assert all(r["health"] == "ok" for r in rules), rules
