"""The replica simulation: deploy/k8s as rendered, run on this machine (tests/deploy/replicas.py).

Three API pods of two gunicorn workers each, one Celery worker, a private Redis, and nginx's
round robin standing in for the Service. Everything but the metrics scrapes goes through nginx,
so no request chooses its pod, and each test shows that the answer does not depend on the pod.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import by_name, rendered
from tests.deploy.replicas import Cluster, Pod
from tests.factories import IRIS_FEATURES, IRIS_LABELS, KNOWN_ROWS, write_skops_classifier, write_xgboost_classifier
from tests.jobs.conftest import write_iris_csv

pytestmark = pytest.mark.integration

#: The whole module's time: start-up, every test, every wait.
BUDGET_SECONDS = 90
#: The API keys of the simulation's Secret: name -> roles.
KEYS = {"ops": ["admin", "predict"], "client": ["predict"], "counted": ["predict"]}

GATED_MODEL = '''
import time

import numpy as np


class GatedIris:
    """Iris by petal length; a batch of more than one row waits until the file gate.open exists."""

    classes_ = [0, 1, 2]
    n_features = 4

    def load(self):
        self.gate = self.model_dir / "gate.open"

    def predict(self, X):
        X = np.asarray(X)
        if len(X) > 1:  # not the one-row trial prediction of a load
            deadline = time.monotonic() + 60
            while not self.gate.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the gate was never opened")
                time.sleep(0.02)
        return (X[:, 2] > 2.5).astype(int) + (X[:, 2] > 4.9).astype(int)
'''


def write_models(directory: Path) -> Path:
    """Models that production loads without trust (the default one among them), and a custom .py
    model that needs trusting first."""
    directory.mkdir(parents=True)
    common = {"labels": IRIS_LABELS, "feature_names": IRIS_FEATURES}
    write_skops_classifier(directory, "iris_classifier", **common)
    write_xgboost_classifier(directory, "iris_xgboost", **common)
    (directory / "gated.py").write_text(textwrap.dedent(GATED_MODEL), encoding="utf-8")
    (directory / "gated.meta.json").write_text(json.dumps(common), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in KEYS}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, keys) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    api_keys = [
        {"name": name, "sha256": hashlib.sha256(keys[name].encode()).hexdigest(), "roles": roles}
        for name, roles in KEYS.items()
    ]
    secret = {"modelserve-secrets": {"api-keys": json.dumps(api_keys)}}
    simulation = Cluster(root, by_name(rendered()), secret, BUDGET_SECONDS)
    write_models(simulation.volume("modelserve-models") / "trained")
    with simulation:
        yield simulation


def until_every_pod_answered(cluster: Cluster, send: Callable[[], requests.Response]) -> list[requests.Response]:
    """``send`` through the Service until each pod has answered once (round robin: three times)."""
    responses: list[requests.Response] = []

    def all_answered() -> bool:
        responses.append(send())
        return {cluster.answered_by(r).name for r in responses} == {pod.name for pod in cluster.pods}

    cluster.deadline.wait(all_answered, "an answer from every pod", describe=lambda: [r.text for r in responses])
    return responses


def predict(cluster: Cluster, key: str, model: str | None = None) -> requests.Response:
    path = f"/api/v1/predict/{model}" if model else "/api/v1/predict"
    return cluster.request("POST", path, key, json={"features": KNOWN_ROWS["virginica"]})


def test_a_model_loaded_or_deleted_through_one_pod_is_so_on_every_pod(cluster, keys):
    body = {"model_name": "replicated", "model_path": "models/trained/iris_xgboost.json"}
    loaded = cluster.request("POST", "/api/v1/models/load", keys["ops"], json=body)
    assert loaded.status_code == 200, loaded.text

    served = until_every_pod_answered(cluster, lambda: predict(cluster, keys["ops"], "replicated"))
    assert [r.status_code for r in served] == [200] * len(served), [r.text for r in served]
    assert {r.json()["prediction_label"] for r in served} == {"virginica"}

    deleted = cluster.request("DELETE", "/api/v1/models/replicated", keys["ops"])
    assert deleted.status_code == 200, deleted.text
    gone = until_every_pod_answered(cluster, lambda: predict(cluster, keys["ops"], "replicated"))
    assert [r.status_code for r in gone] == [404] * len(gone), [r.text for r in gone]


def test_the_101st_prediction_in_a_minute_is_refused_whichever_pod_answers(cluster, keys):
    allowed = [predict(cluster, keys["client"]) for _ in range(100)]
    assert [r.status_code for r in allowed] == [200] * 100, next(r.text for r in allowed if r.status_code != 200)
    assert {cluster.answered_by(r).name for r in allowed} == {pod.name for pod in cluster.pods}
    assert allowed[-1].headers["X-RateLimit-Remaining"] == "0"

    refused = until_every_pod_answered(cluster, lambda: predict(cluster, keys["client"]))
    assert [r.status_code for r in refused] == [429] * len(refused), [r.text for r in refused]
    assert all(int(r.headers["Retry-After"]) <= 60 for r in refused)
    assert predict(cluster, keys["counted"]).status_code == 200, "another key counts apart"


def requests_counted(pod: Pod, endpoint: str) -> float:
    """The pod's ``http_requests_total`` for ``endpoint``, over its workers, from its own /metrics."""
    response = pod.get("/api/v1/metrics")
    assert response.status_code == 200, response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels["endpoint"] == endpoint
    )


def test_each_pods_metrics_count_its_own_requests(cluster, keys):
    """Prometheus scrapes each pod (deployment.yaml's annotations): the pods' counts add up."""
    endpoint = "/api/v1/predict"
    before = {pod.name: requests_counted(pod, endpoint) for pod in cluster.pods}
    sent = [predict(cluster, keys["counted"]) for _ in range(30)]
    assert {r.status_code for r in sent} == {200}
    answered = Counter(cluster.answered_by(r).name for r in sent)
    counted = {pod.name: requests_counted(pod, endpoint) - before[pod.name] for pod in cluster.pods}
    assert counted == answered, "each pod counts the requests it answered, over both its workers"
    assert sum(counted.values()) == len(sent)
    assert len(answered) == len(cluster.pods)


def test_a_job_completes_through_the_round_robin_when_the_pod_that_took_it_dies(cluster, keys):
    ops = keys["ops"]
    trusted = cluster.request("POST", "/api/v1/models/trust", ops, json={"model_path": "gated.py"})
    assert trusted.status_code == 200, trusted.text
    loaded = cluster.request("POST", "/api/v1/models/load", ops, json={"model_name": "gated", "model_path": "gated.py"})
    assert loaded.status_code == 200, loaded.text
    write_iris_csv(cluster.volume("modelserve-jobs") / "data" / "iris.csv")

    body = {"data_path": "iris.csv", "output_path": "gated.csv", "model_name": "gated"}
    submitted = cluster.request("POST", "/api/v1/predict-async", ops, json=body)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    taker = cluster.answered_by(submitted)

    def status() -> dict:
        response = cluster.request("GET", f"/api/v1/jobs/{job['job_id']}/status", ops)
        assert response.status_code == 200, response.text
        return response.json()

    cluster.deadline.wait(lambda: status()["status"] == "running", "the worker to start the job")
    taker.child.kill()
    (cluster.volume("modelserve-models") / "trained" / "gate.open").touch()

    def ended() -> dict | None:
        body = status()
        return body if body["status"] not in ("queued", "running") else None

    done = cluster.deadline.wait(ended, "the job to end", cluster.logs)
    assert done["status"] == "completed", (done, cluster.logs())
    assert done["progress"]["rows_done"] == 150 and done["attempts"] == 1

    result = cluster.request("GET", done["links"]["result"], ops)
    assert result.status_code == 200, result.text
    assert cluster.answered_by(result) is not taker
    lines = result.text.splitlines()
    assert len(lines) == 151 and "prediction_label" in lines[0]

    # The Deployment replaces the pod: new emptyDirs, yet it knows the trusted model and the job.
    replacement = cluster.replace(taker)
    assert replacement.get(f"/api/v1/jobs/{job['job_id']}/status", headers={"X-API-Key": ops}).json() == done
    gated = requests.post(
        replacement.url + "/api/v1/predict/gated", json={"features": KNOWN_ROWS["setosa"]}, headers={"X-API-Key": ops}
    )
    assert gated.status_code == 200 and gated.json()["prediction_label"] == "setosa", gated.text
