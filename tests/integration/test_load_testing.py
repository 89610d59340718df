"""The spec's load-testing commands, run as written (only shorter) against real gunicorn.

``locust -f load_test.py`` runs headless for a few seconds: a key without a tier
meets its limits, and its only failures are 429s; a key with a tier runs past
the default limit without one. ``ab -p test_data.json`` and ``wrk
--script=test_script.lua`` run against a server configured as ``make serve``'s
(no credentials, the spec's limits shared by the workers): every prediction is
answered, 200 or 429, never anything else.
"""

from __future__ import annotations

import csv
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.security.auth import new_api_key
from tests.deploy.support import tool
from tests.factories import IRIS_FEATURES, KNOWN_ROWS, write_iris_set
from tests.helpers import PROJECT_ROOT, GunicornServer

pytestmark = pytest.mark.integration
WORKERS = 2
LOCUST_SECONDS = 4
#: Low limits, so that a few seconds of locust meet them; shared by the workers (shared-memory://), as make serve does.
LIMITS = {"predict": "10/minute", "batch_predict": "2/minute", "model_management": "2/minute"}
PLAIN_KEY, PLAIN_SHA = new_api_key()
TIERED_KEY, TIERED_SHA = new_api_key()
TIER = {"predict": "100000/minute", "batch_predict": "100000/minute"}
PREDICT = "/api/v1/predict"


def write_job_data(data_dir: Path) -> None:
    """load_test.py's jobs score the spec's demo file; a short one here."""
    path = data_dir / "batch" / "large_dataset.csv"
    path.parent.mkdir(parents=True)
    rows = [[f"iris-{i}", *row] for i, row in enumerate(KNOWN_ROWS.values())]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["id", *IRIS_FEATURES], *rows])


def sections(tmp: Path) -> dict:
    write_job_data(tmp / "data")
    return {
        "models": {"model_directory": str(write_iris_set(tmp / "models"))},
        "jobs": {"data_directory": str(tmp / "data"), "output_directory": str(tmp / "predictions")},
        "logging": {"access_log": False},
    }


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """Credentials required: a key with the default limits and a ``loadtest`` key with a tier."""
    tmp = tmp_path_factory.mktemp("keyed")
    keys = [
        {"name": "scorer", "sha256": PLAIN_SHA, "roles": ["admin"]},  # admin: load_test.py's jobs need it
        {"name": "loadtest", "sha256": TIERED_SHA, "roles": ["admin"], "rate_limits": TIER},
    ]
    security = {"rate_limit_enabled": True, "rate_limits": LIMITS, "api_keys": keys}
    with GunicornServer(tmp, {**sections(tmp), "security": security}, workers=WORKERS) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """As make serve: no credentials, the spec's limits (100 predictions a minute per client), shared by the workers."""
    tmp = tmp_path_factory.mktemp("served")
    with GunicornServer(tmp, {**sections(tmp), "security": {"rate_limit_enabled": True}}, workers=WORKERS) as server:
        yield server


def locust(server: GunicornServer, tmp_path: Path, key: str) -> tuple[subprocess.CompletedProcess, dict, list]:
    """``locust -f load_test.py --host=...``, headless for a few seconds; its stats and failures (CSV)."""
    prefix = tmp_path / "locust"
    args = [tool("locust", "locust (pip install -e '.[loadtest]')"), "-f", "load_test.py", f"--host={server.url}"]
    args += ["--headless", "--users", "20", "--spawn-rate", "20", "--run-time", f"{LOCUST_SECONDS}s"]
    args += ["--only-summary", "--csv", str(prefix)]
    env = {**server.env, "LOADTEST_API_KEY": key}
    run = subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=LOCUST_SECONDS + 60)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as fh:
        stats = {row["Name"]: row for row in csv.DictReader(fh)}
    with open(f"{prefix}_failures.csv", encoding="utf-8") as fh:
        failures = list(csv.DictReader(fh))
    return run, stats, failures


def test_locust_with_a_key_without_a_tier_fails_only_with_the_expected_429s(keyed_server, tmp_path):
    run, stats, failures = locust(keyed_server, tmp_path, PLAIN_KEY)
    assert "Response time percentiles" in run.stderr, run.stderr  # locust prints its summary there
    assert int(stats["Aggregated"]["Failure Count"]) > 0, run.stderr  # the limits were met
    assert failures and all("429" in f["Error"] for f in failures), failures
    assert int(stats[PREDICT]["Request Count"]) > int(stats[PREDICT]["Failure Count"]) > 0
    assert run.returncode == 1  # locust's exit code when requests failed


def test_locust_with_a_tiered_key_runs_past_the_default_limit_without_a_failure(keyed_server, tmp_path):
    run, stats, failures = locust(keyed_server, tmp_path, TIERED_KEY)
    assert run.returncode == 0, run.stdout + run.stderr
    assert failures == []
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    # the workers would have refused the 11th prediction of a minute without the tier
    assert int(stats[PREDICT]["Request Count"]) > 10 * WORKERS
    assert {"/api/v1/batch-predict", "/api/v1/models"} <= stats.keys()


def prediction_statuses(server: GunicornServer) -> Counter:
    """Answers of POST /api/v1/predict by status, from the server's metrics (all workers)."""
    counts: Counter = Counter()
    for family in text_string_to_metric_families(server.get("/api/v1/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_requests_total" and labels["endpoint"] == PREDICT and labels["method"] == "POST":
                counts[labels["status"]] += int(sample.value)
    return counts


def test_ab_runs_the_spec_command_and_every_prediction_is_answered_200_or_429(served):
    ab = tool("ab", "apache2-utils")
    before = prediction_statuses(served)
    args = [ab, "-n", "300", "-c", "10", "-T", "application/json", "-p", "test_data.json", served.url + PREDICT]
    run = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^Complete requests:\s+300$", run.stdout, re.M), run.stdout
    answered = prediction_statuses(served) - before
    assert set(answered) <= {"200", "429"} and answered.total() == 300, answered
    assert answered["200"] <= 100  # the spec's 100/minute, whichever worker answers
    assert re.search(rf"^Non-2xx responses:\s+{answered['429']}$", run.stdout, re.M), run.stdout


def test_wrk_runs_the_spec_script_and_every_prediction_is_answered_200_or_429(served):
    wrk = tool("wrk", "wrk")
    before = prediction_statuses(served)
    args = [wrk, "-t2", "-c20", "-d2s", "--script=test_script.lua", served.url + PREDICT]
    run = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    sent = int(re.search(r"(\d+) requests in", run.stdout).group(1))
    answered = prediction_statuses(served) - before
    assert set(answered) <= {"200", "429"} and answered.total() >= sent > 0, (answered, run.stdout)
    assert "Socket errors" not in run.stdout, run.stdout
