"""deploy/nginx/modelserve.conf for real: Debian's nginx with the repository's file (the upstream
and the port swapped for free ones, everything it writes in a temporary prefix) in front of real
gunicorn, and slow clients through it.

The gunicorn behind it has one thread per worker on purpose: alone, 2 × workers slow clients starve
it (gunicorn.conf.py has the measurements). Through nginx, which reads requests whole before it
passes them on, 4 × that many leave every other request answered promptly.
"""

from __future__ import annotations

import re

import pytest
import requests

from tests.chaos.slowloris import Probe, Slowloris
from tests.deploy.services import Deadline, start_nginx
from tests.deploy.support import NGINX_CONFIG, tool
from tests.helpers import GunicornServer, free_port

pytestmark = pytest.mark.integration

WORKERS = 2
SLOW_CLIENTS = 8 * WORKERS
PROMPT = 2.0


def repository_config(upstream_port: int, port: int) -> str:
    """The repository's file with this test's addresses: nothing else changes."""
    text = NGINX_CONFIG.read_text()
    assert "server api:8000;" in text and "listen 8000;" in text
    return text.replace("server api:8000;", f"server 127.0.0.1:{upstream_port};").replace(
        "listen 8000;", f"listen 127.0.0.1:{port};"
    )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, iris_models):
    binary = tool("nginx", "the Debian package nginx")
    root = tmp_path_factory.mktemp("nginx")
    config = {
        "models": {"model_directory": str(iris_models)},
        "api": {"threads": 1},
        "logging": {"access_log": False},
        "security": {"trusted_proxies": 1},
    }
    with GunicornServer(root / "gunicorn", config, workers=WORKERS) as server:
        port = free_port()
        proxy = start_nginx(binary, root / "nginx", repository_config(server.port, port))
        try:
            url = f"http://127.0.0.1:{port}"
            Deadline(30).wait(lambda: _answers(url, proxy), "nginx", describe=proxy.log)
            yield url, port, server
        finally:
            proxy.stop()


def _answers(url, proxy) -> bool:
    proxy.check_running()
    try:
        return requests.get(url + "/api/v1/health/live", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("body", [False, True], ids=["trickled-headers", "trickled-body"])
def test_nginx_keeps_slow_clients_away_from_gunicorn(proxied, body):
    url, port, _ = proxied
    with Slowloris("127.0.0.1", port, SLOW_CLIENTS, body=body, interval=0.5) as slow:
        probe = Probe().run(url + "/api/v1/health/live", 20, timeout=5, pause=0.15)
        held, trickled = slow.open_connections(), slow.sent_lines
    assert not probe.failures, probe.summary()
    assert probe.slowest < PROMPT, probe.summary()
    assert held == SLOW_CLIENTS and trickled >= 3, (held, trickled)


def test_predictions_through_nginx_carry_the_request_id_and_client_address(proxied):
    url, _, _ = proxied
    row = {"features": [5.1, 3.5, 1.4, 0.2]}
    sent = requests.post(url + "/api/v1/predict", json=row, headers={"X-Request-ID": "chaos-1"}, timeout=10)
    assert sent.status_code == 200 and sent.json()["prediction_label"] == "setosa"
    assert sent.headers["X-Request-ID"] == "chaos-1"
    made = requests.get(url + "/api/v1/health/live", timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"]), "nginx's id when the client sends none"


def test_a_body_over_the_limit_is_refused_by_nginx_in_the_one_error_shape(proxied):
    url, _, _ = proxied
    body = b'{"features": [' + b" " * (10 * 2**20) + b"]}"
    headers = {"Content-Type": "application/json"}
    response = requests.post(url + "/api/v1/predict", data=body, headers=headers, timeout=30)
    assert response.status_code == 413 and response.headers["Content-Type"].startswith("application/json")
    error = response.json()
    assert error["code"] == 413 and error["request_id"] == response.headers["X-Request-ID"]
