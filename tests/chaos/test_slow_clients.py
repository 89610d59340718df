"""Slow clients do not starve fast ones: ``make serve``'s gunicorn settings, without a proxy, with
the development and the production configuration.

2 × workers connections trickle a request (one header line a second, or a body one byte a
second, never finishing) while a fast client asks ``/api/v1/health/live`` on new connections.
Each trickling request holds a gunicorn thread; gunicorn.conf.py says why the default thread
count keeps a free one in every worker.
"""

from __future__ import annotations

import pytest

from app.security.auth import new_api_key
from tests.chaos.slowloris import Probe, Slowloris
from tests.helpers import GunicornServer, redis_or_skip

pytestmark = pytest.mark.integration

WORKERS = 4  # make serve's api.workers
SLOW_CLIENTS = 2 * WORKERS
#: A fast request's answer takes milliseconds; this allows for a loaded test machine. Without the
#: fix, a starved request waits for the whole client timeout.
PROMPT = 2.0
CLIENT_TIMEOUT = 5.0


#: Rate limits counted in Redis (a database of their own; the keys expire within the minute).
LIMITS_REDIS = "redis://127.0.0.1:6379/10"


def production(iris_models) -> dict:
    """A production configuration: API keys, rate limits in Redis."""
    redis_or_skip(LIMITS_REDIS).close()
    _, sha = new_api_key()
    return {
        "environment": "production",
        "models": {"model_directory": str(iris_models)},
        "logging": {"access_log": False},
        "security": {
            "api_keys": [{"name": "scorer", "sha256": sha, "roles": ["predict"]}],
            "rate_limit_enabled": True,
            "rate_limit_storage": LIMITS_REDIS,
        },
    }


@pytest.fixture(scope="module", params=["make-serve", "production"])
def server(request, tmp_path_factory, iris_models):
    if request.param == "production":
        config = production(iris_models)
    else:
        config = {"models": {"model_directory": str(iris_models)}, "logging": {"access_log": False}}
    with GunicornServer(tmp_path_factory.mktemp("slow-clients"), config, workers=WORKERS) as srv:
        yield srv


@pytest.mark.parametrize("body", [False, True], ids=["trickled-headers", "trickled-body"])
def test_slow_clients_do_not_delay_others(server, body):
    with Slowloris("127.0.0.1", server.port, SLOW_CLIENTS, body=body, interval=0.5) as slow:
        # 20 requests over about 3 s: the slow connections are accepted and trickling throughout.
        probe = Probe().run(server.url + "/api/v1/health/live", 20, timeout=CLIENT_TIMEOUT, pause=0.15)
        held = slow.open_connections()
        trickled = slow.sent_lines
    assert not probe.failures, probe.summary()
    assert probe.slowest < PROMPT, probe.summary()
    # The slow clients were really there: every connection still open, several parts sent.
    assert held == SLOW_CLIENTS and trickled >= 3, (held, trickled)
    assert server.get("/api/v1/health/live").status_code == 200
