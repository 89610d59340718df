"""Redis goes away under load, then comes back empty: predictions never fail, and nothing needs a restart.

(The last test freezes Redis instead, as a network partition would: connected, silent.)

A production-like server (API keys, 3 gunicorn workers) keeps its rate limits,
its registry's shared state and its job store in a redis-server of the test's
own. Predictions flow from two clients while that Redis is SIGKILLed and later
started again on the same port, with no persistence (its data is gone):

- predictions: 0 answers of 5xx, 0 connection errors, before, during and after;
- during the outage: health ``degraded`` naming redis, ``/ready`` still ready,
  a SIGKILLed worker replaced by one that serves the state saved on this machine,
  limits counted per worker (a tight client still meets 429), a warning per
  worker rather than per request, the fallback visible in the metrics, and
  management calls and job submissions refused with 503 in the one error shape;
- after it: health ``healthy`` again, limits shared through Redis again, the
  registry's state written back into the empty Redis, management calls working.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from app.dependencies import SOCKET_TIMEOUT_SECONDS
from app.security.auth import new_api_key
from tests.chaos.background_clients import BackgroundClients
from tests.chaos.redis_server import RedisServer
from tests.factories import IRIS_FEATURES, KNOWN_ROWS, write_iris_set
from tests.helpers import GunicornServer, assert_error, poll_until

pytestmark = pytest.mark.integration
WORKERS = 3
ROW = KNOWN_ROWS["setosa"]
TIGHT = 3  # the tight key's predictions per minute
OUTAGE_SECONDS = 4


class Keys:
    def __init__(self) -> None:
        self.admin, self.admin_sha = new_api_key()
        self.scorer, self.scorer_sha = new_api_key()
        self.tight, self.tight_sha = new_api_key()


def production_config(root: Path, redis: RedisServer, keys: Keys) -> dict:
    model_dir = write_iris_set(root / "models")
    data_dir = root / "data"
    data_dir.mkdir()
    rows = "\n".join(",".join(map(str, row)) for row in KNOWN_ROWS.values())
    (data_dir / "iris.csv").write_text(",".join(IRIS_FEATURES) + "\n" + rows + "\n", encoding="utf-8")
    tight = f"{TIGHT}/minute"
    trusted = [hashlib.sha256(p.read_bytes()).hexdigest() for p in model_dir.iterdir() if p.is_file()]
    return {
        "environment": "production",
        "models": {"model_directory": str(model_dir)},
        "registry": {"backend": "redis", "redis_url": redis.url(0), "redis_prefix": "chaos"},
        "jobs": {
            "store": "redis",
            "redis_url": redis.url(0),
            "redis_prefix": "chaos",
            "data_directory": str(data_dir),
            "output_directory": str(root / "out"),
        },
        "health": {f"{c}_{lvl}_percent": 100 for c in ("memory", "disk") for lvl in ("degraded", "unhealthy")},
        "security": {
            "rate_limit_enabled": True,
            "rate_limit_storage": redis.url(1),
            "rate_limits": {"predict": "100000/minute", "model_management": "1000/minute"},
            "trusted_models": trusted,
            "api_keys": [
                {"name": "ops", "sha256": keys.admin_sha, "roles": ["admin", "predict"]},
                {"name": "scorer", "sha256": keys.scorer_sha, "roles": ["predict"]},
                {"name": "tight", "sha256": keys.tight_sha, "roles": ["predict"], "rate_limits": {"predict": tight}},
            ],
        },
    }


class PredictionLoad(BackgroundClients):
    """Two clients predicting until stopped: one on a kept-alive connection, one opening a new one each time."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__([(True,), (False,)])
        self.url, self.key = url, key
        self.failures: list[tuple[float, str]] = []

    def _client(self, keep_alive: bool) -> None:
        session = requests.Session() if keep_alive else requests
        headers = {"X-API-Key": self.key}
        while not self._stop.is_set():
            try:
                r = session.post(self.url + "/api/v1/predict", json={"features": ROW}, headers=headers, timeout=30)
                ok = r.status_code == 200 and r.json()["prediction_label"] == "setosa"
                kind = "ok" if ok else f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as exc:
                kind = f"error {type(exc).__name__}"
            with self._lock:
                self.outcomes["ok" if kind == "ok" else kind] += 1
                if kind != "ok":
                    self.failures.append((time.monotonic(), kind))


def all_workers_answer(server: GunicornServer, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    for _ in range(30):
        seen.add(requests.get(server.url + "/api/v1/health/live", timeout=30).json()["worker_pid"])
    return len(seen) == WORKERS


def replace_a_worker(server: GunicornServer, key: str) -> list[requests.Response]:
    """SIGKILL one worker, wait for gunicorn's replacement to answer, then predict on 30 new connections."""
    victim = min(server.worker_pids())
    os.kill(victim, signal.SIGKILL)
    poll_until(
        lambda: victim not in (pids := server.worker_pids()) and len(pids) == WORKERS,
        "gunicorn to replace the killed worker",
        timeout=60,
    )
    poll_until(lambda: all_workers_answer(server), "the new worker to answer (it answers once warm)", timeout=120)
    headers = {"X-API-Key": key}
    return [requests.post(server.url + "/api/v1/predict", json={"features": ROW}, headers=headers) for _ in range(30)]


def health(server: GunicornServer) -> dict:
    return server.get("/api/v1/health").json()


def degraded_naming_redis(server: GunicornServer) -> dict:
    """The health report once it says degraded, naming redis."""
    return poll_until(
        lambda: (h := health(server))["status"] == "degraded" and redis_named(h) and h,
        "health to report degraded, naming redis",
        timeout=30,
        describe=lambda: health(server),
    )


def redis_named(report: dict) -> bool:
    dependencies = report["checks"].get("dependencies", [])
    return any(dep["name"] == "redis" and dep["status"] != "healthy" for dep in dependencies)


def test_redis_lost_under_load_degrades_and_recovers(tmp_path):
    keys = Keys()
    with RedisServer(tmp_path / "redis") as redis:
        config = production_config(tmp_path, redis, keys)
        with GunicornServer(tmp_path, config, workers=WORKERS) as server:
            admin = {"X-API-Key": keys.admin}
            poll_until(  # a worker answers once warm: all of them read the shared state before it goes
                lambda: all_workers_answer(server), f"{WORKERS} workers to answer", timeout=120
            )
            before = health(server)
            assert before["status"] == "healthy", before
            assert server.post("/api/v1/models/iris_xgboost/alias", json={"alias": "stable"}, headers=admin).ok

            with PredictionLoad(server.url, keys.scorer) as load:
                poll_until(lambda: load.total() >= 20, "predictions before the outage", timeout=60)
                redis.kill()
                killed_at, served_before = time.monotonic(), load.total()

                report = degraded_naming_redis(server)
                assert report["checks"]["models"]["status"] == "healthy", report
                ready = server.get("/api/v1/health/ready")
                assert ready.status_code == 200, ready.text  # it still serves: stay in the load balancer

                load_body = {"model_name": "again", "model_path": "iris_xgboost.json"}
                refused = server.post("/api/v1/models/load", json=load_body, headers=admin)
                assert_error(refused, 503, contains="redis")
                assert_error(server.post("/api/v1/models/iris_xgboost/alias", json={"alias": "x"}, headers=admin), 503)
                job = {"data_path": "iris.csv", "output_path": "out.csv"}
                assert_error(server.post("/api/v1/predict-async", json=job, headers=admin), 503)

                tight = [
                    requests.post(
                        server.url + "/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": keys.tight}
                    )
                    for _ in range(TIGHT * WORKERS + 5)
                ]
                statuses = Counter(r.status_code for r in tight)
                others = [r.text for r in tight if r.status_code not in (200, 429)]
                assert set(statuses) == {200, 429} and statuses[200] <= TIGHT * WORKERS, (statuses, others)
                limited = next(r for r in tight if r.status_code == 429)
                assert_error(limited, 429)
                assert int(limited.headers["Retry-After"]) >= 0 and limited.headers["X-RateLimit-Limit"] == "3"

                status = server.get("/api/v1/status", headers=admin)
                assert status.status_code == 200 and status.json()["jobs"] is None, status.text  # jobs unknown now
                metrics = server.get("/api/v1/metrics").text
                assert "rate_limit_storage_up 0.0" in metrics, metrics[-2000:]
                poll_until(  # an outage of some seconds: each worker retries Redis once a second meanwhile
                    lambda: load.total() >= served_before + 50 and time.monotonic() - killed_at > OUTAGE_SECONDS,
                    "predictions during the outage",
                    timeout=60,
                )
                served_during = load.total() - served_before

            # Still without Redis, between two loads (a killed worker's own requests fail, as they must): the
            # worker gunicorn starts in place of a SIGKILLed one serves the state saved on this machine.
            replaced = replace_a_worker(server, keys.scorer)
            assert [r.status_code for r in replaced] == [200] * len(replaced), [r.text for r in replaced][:3]

            with PredictionLoad(server.url, keys.scorer) as after:
                redis.start()
                restarted_at = time.monotonic()
                poll_until(
                    lambda: health(server)["status"] == "healthy",
                    "health to recover",
                    timeout=30,
                    describe=lambda: health(server),
                )
                poll_until(  # every worker counts in Redis again (its next hit after a retry found it)
                    lambda: "rate_limit_storage_up 1.0" in server.get("/api/v1/metrics").text,
                    "the rate limits back in Redis",
                    timeout=30,
                )
                recovery = time.monotonic() - restarted_at
                loaded = server.post("/api/v1/models/load", json=load_body, headers=admin)
                assert loaded.status_code == 200, loaded.text
                served_after = after.total()
                poll_until(lambda: after.total() >= served_after + 20, "predictions after the outage", timeout=60)

            for run in (load, after):
                assert run.outcomes.keys() == {"ok"}, (run.outcomes, run.failures[:5])
            total = load.total() + after.total() + len(replaced)
            print(  # the docs' fault table quotes these
                f"\nlost redis: 0 failed of {total} predictions ({served_during + len(replaced)} during the "
                f"{restarted_at - killed_at:.1f} s outage); healthy, limits in Redis again {recovery:.2f} s "
                "after redis returned"
            )
            # Limits are shared through Redis again: the tight key gets exactly its 3, whichever worker answers.
            again = [
                requests.post(server.url + "/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": keys.tight})
                for _ in range(TIGHT + 4)
            ]
            assert [r.status_code for r in again] == [200] * TIGHT + [429] * 4
            for name in ("iris_classifier", "stable", "again"):  # the state written back into the empty Redis
                assert server.post(f"/api/v1/predict/{name}", json={"features": ROW}, headers=admin).ok
            log = server.log()
            warnings = log.count("rate limits: redis")
            # once per outage and worker (the replacement too) at most, and once as it ends: not per request
            assert 1 <= warnings <= (WORKERS + 1) * 2, warnings
            assert "serving the copy saved at generation" in log  # the replacement worker's start
            assert "restored the state this worker read last" in log
            assert "Traceback" not in log


def timed_prediction(server: GunicornServer, key: str) -> float:
    """Seconds one prediction took, on a new connection (any worker may answer it)."""
    started = time.monotonic()
    response = requests.post(server.url + "/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def test_redis_that_stops_answering_costs_waits_not_failures(tmp_path):
    """A Redis frozen by SIGSTOP (connected, never answering) for some seconds, under load.

    Each worker waits for it at most once a second (a socket timeout), not on every
    request: predictions keep flowing and none fails; health says degraded, naming
    redis; when Redis answers again, health is healthy and limits are shared again.
    """
    keys = Keys()
    with RedisServer(tmp_path / "redis") as redis:
        with GunicornServer(tmp_path, production_config(tmp_path, redis, keys), workers=WORKERS) as server:
            poll_until(lambda: all_workers_answer(server), f"{WORKERS} workers to answer", timeout=120)
            with PredictionLoad(server.url, keys.scorer) as load:
                poll_until(lambda: load.total() >= 20, "predictions before the freeze", timeout=60)
                redis.freeze()
                try:
                    frozen_at, served_before = time.monotonic(), load.total()
                    report = degraded_naming_redis(server)
                    assert server.get("/api/v1/health/ready").status_code == 200, report
                    poll_until(
                        lambda: time.monotonic() - frozen_at > OUTAGE_SECONDS and load.total() >= served_before + 50,
                        "predictions while Redis is silent (a worker waits for it once a second at most)",
                        timeout=60,
                    )
                    served_during = load.total() - served_before
                    # Only the requests in flight as a worker found Redis silent waited for it (one timeout per
                    # store they used): each worker finds it once per store, then no request waits any more.
                    waited = sum(timed_prediction(server, keys.scorer) >= SOCKET_TIMEOUT_SECONDS for _ in range(30))
                    assert waited <= WORKERS * 2, f"{waited} of 30 predictions waited for the silent Redis"
                finally:
                    redis.thaw()
                thawed_at = time.monotonic()
                poll_until(lambda: health(server)["status"] == "healthy", "health to recover", timeout=30)
                poll_until(
                    lambda: "rate_limit_storage_up 1.0" in server.get("/api/v1/metrics").text,
                    "the rate limits back in Redis",
                    timeout=30,
                )
            assert load.outcomes.keys() == {"ok"}, (load.outcomes, load.failures[:5])
            print(
                f"\nfrozen redis: 0 failed of {load.total()} predictions ({served_during} in the "
                f"{thawed_at - frozen_at:.1f} s freeze)"
            )
            again = [
                requests.post(server.url + "/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": keys.tight})
                for _ in range(TIGHT + 4)
            ]
            assert [r.status_code for r in again] == [200] * TIGHT + [429] * 4, "limits shared through Redis again"
            assert "Traceback" not in server.log()
