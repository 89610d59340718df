"""Every URL the deployment files ask modelserve for is a route of the application."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.support import COMPOSE_FILE, DOCKERFILE, K8S_DIR, PROMETHEUS_CONFIG

API_PATH = re.compile(r"/api/v1/[\w./-]*\w")


def referenced_paths() -> dict[str, set[str]]:
    """Path -> the files that use it: health checks, probes, scrape paths and annotations."""
    sources = [DOCKERFILE, COMPOSE_FILE, PROMETHEUS_CONFIG, *sorted(K8S_DIR.glob("*.yaml"))]
    found: dict[str, set[str]] = {}
    for path in sources:
        text = path.read_text()
        if path.suffix == ".yaml" and path.parent == K8S_DIR:
            # the ConfigMap's embedded config files name endpoints too, but as settings, not requests
            text = "\n".join(yaml.safe_dump(doc) for doc in yaml.safe_load_all(text) if doc.get("kind") != "ConfigMap")
        for match in API_PATH.findall(text):
            found.setdefault(match, set()).add(path.name)
    return found


def test_the_deploy_files_reference_the_probe_and_metrics_paths():
    assert {"/api/v1/health/live", "/api/v1/health/ready", "/api/v1/metrics"} <= set(referenced_paths())


@pytest.mark.parametrize("path", sorted(referenced_paths()))
def test_referenced_path_is_a_get_route(app, path):
    routes = {rule.rule: rule.methods for rule in app.url_map.iter_rules()}
    users = ", ".join(sorted(referenced_paths()[path]))
    assert path in routes, f"{users} ask for {path}, which modelserve does not serve"
    assert "GET" in routes[path]
