"""``make serve``'s embedded default (no Redis) holds the spec's 100 predictions a minute across its 4 workers.

The limits are counted in ``shared-memory://``, the default storage: one table
of counters in the state directory that every worker maps. Each request opens
its own connection and first asks ``/health/live`` which worker holds it, so
the test sees the requests spread over the workers and still refused at the
101st.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.factories import KNOWN_ROWS, write_iris_set
from tests.helpers import GunicornServer, assert_error

pytestmark = pytest.mark.integration
WORKERS = 4  # make serve's
ROW = KNOWN_ROWS["setosa"]


def predict_on_a_new_connection(server: GunicornServer) -> tuple[int, requests.Response]:
    """(pid of the worker that answered, its answer to one prediction)."""
    with requests.Session() as session:  # one kept-alive connection: both requests reach the same worker
        pid = session.get(server.url + "/api/v1/health/live", timeout=30).json()["worker_pid"]
        return pid, session.post(server.url + "/api/v1/predict", json={"features": ROW}, timeout=30)


def test_the_101st_prediction_in_a_minute_is_refused_whichever_worker_answers(tmp_path):
    config = {
        "models": {"model_directory": str(write_iris_set(tmp_path / "models"))},
        # The shipped defaults: limits on, 100/minute for predictions, no storage named.
        "security": {"rate_limit_enabled": True},
    }
    with GunicornServer(tmp_path, config, workers=WORKERS) as server:
        started = time.time()
        answers = [predict_on_a_new_connection(server) for _ in range(100)]
        assert [r.status_code for _, r in answers] == [200] * 100, [r.text for _, r in answers if not r.ok][:3]
        assert len({pid for pid, _ in answers}) >= 2  # the workers shared the answering
        assert {r.headers["X-RateLimit-Limit"] for _, r in answers} == {"100"}
        remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for _, r in answers)
        assert remaining == list(range(100))  # one counter for the machine, not one per worker

        refused = [predict_on_a_new_connection(server) for _ in range(4)]
        while len({pid for pid, _ in refused}) < 2 and len(refused) < 100:  # until two workers have refused
            refused.append(predict_on_a_new_connection(server))
        for _, response in refused:
            assert_error(response, 429, contains="100 per 1 minute")
            assert response.headers["X-RateLimit-Remaining"] == "0"
            reset = int(response.headers["X-RateLimit-Reset"])
            retry_after = int(response.headers["Retry-After"])
            assert started < reset <= time.time() + 61
            assert 0 < retry_after <= 61 and abs(reset - time.time() - retry_after) <= 2
        assert len({pid for pid, _ in refused}) >= 2  # refused by more than one worker
        assert (tmp_path / "state" / "rate-limits.bin").is_file()
