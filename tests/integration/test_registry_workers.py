"""The registry's promises over HTTP, with real gunicorn workers (and two "replicas" sharing Redis).

- once a load returns, every worker serves the model; once a delete returns, none does;
- a swap under continuous load fails no request and gives no wrong answer;
- max_models bounds each worker's memory (LRU, lazy reload); idle models are unloaded.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.factories import KNOWN_ROWS, write_iris_set, write_sklearn_classifier, write_xgboost_classifier
from tests.helpers import GunicornServer, assert_error, redis_or_skip

pytestmark = pytest.mark.integration
ROW = KNOWN_ROWS["setosa"]


def model_dir_with_extras(root: Path) -> Path:
    model_dir = write_iris_set(root / "models")
    for name in ("candidate", "other"):
        write_sklearn_classifier(model_dir, name=name, suffix=".pkl")
        (model_dir / f"{name}.meta.json").write_text(
            '{"auto_load": false, "labels": ["setosa", "versicolor", "virginica"]}'
        )
    write_xgboost_classifier(model_dir, name="boosted", suffix=".ubj")
    (model_dir / "boosted.meta.json").write_text(
        '{"auto_load": false, "labels": ["setosa", "versicolor", "virginica"]}'
    )
    return model_dir


@pytest.fixture(scope="module")
def four_workers(tmp_path_factory):
    root = tmp_path_factory.mktemp("four")
    with GunicornServer(root, {"models": {"model_directory": str(model_dir_with_extras(root))}}, workers=4) as srv:
        yield srv


def test_load_is_served_by_all_four_workers_and_delete_by_none(four_workers):
    srv = four_workers
    assert srv.post("/api/v1/models/load", json={"model_name": "fresh", "model_path": "candidate.pkl"}).ok
    pids = set()
    for _ in range(200):
        response = srv.post("/api/v1/predict/fresh", json={"features": ROW})
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Name"] == "fresh" and response.headers["X-Model-Version"] == "1"
    for _ in range(400):
        pids.add(srv.get("/api/v1/models/fresh/info").json()["worker_pid"])
        if len(pids) == 4:
            break
    assert len(pids) >= 2, pids
    assert srv.delete("/api/v1/models/fresh").ok
    for _ in range(200):
        assert_error(srv.post("/api/v1/predict/fresh", json={"features": ROW}), 404)


def test_versions_aliases_rollback_and_audit(four_workers):
    srv = four_workers
    first = srv.post("/api/v1/models/load", json={"model_name": "prod", "model_path": "candidate.pkl"}).json()
    second = srv.post("/api/v1/models/load", json={"model_name": "prod", "model_path": "boosted.ubj"}).json()
    assert (first["model"]["version"], second["model"]["version"]) == (1, 2)
    info = srv.get("/api/v1/models/prod/info").json()
    assert info["versions"] == [1, 2] and info["version"] == 2 and info["adapter"] == "xgboost"
    assert [v["current"] for v in info["version_history"]] == [False, True]

    alias = srv.post("/api/v1/models/prod/alias", json={"alias": "stable", "version": 1}).json()
    assert alias == {"alias": "stable", "model_name": "prod", "version": 1, "resolved_version": 1}
    for _ in range(50):
        pinned = srv.post("/api/v1/predict/stable", json={"features": ROW})
        assert pinned.headers["X-Model-Version"] == "1" and pinned.json()["served_model"] == "prod"

    back = srv.post("/api/v1/models/prod/rollback", json={}).json()
    assert back["version"] == 1
    for _ in range(50):
        assert srv.post("/api/v1/predict/prod", json={"features": ROW}).headers["X-Model-Version"] == "1"
    assert_error(srv.post("/api/v1/models/prod/rollback", json={"version": 7}), 404)

    assert srv.delete("/api/v1/aliases/stable").ok
    assert srv.delete("/api/v1/models/prod").ok
    entries = srv.get("/api/v1/audit", params={"limit": 20}).json()["entries"]
    actions = [(e["action"], e["target"], e["outcome"]) for e in entries]
    for expected in [
        ("load", "prod", "success"),
        ("alias", "stable", "success"),
        ("rollback", "prod", "success"),
        ("rollback", "prod", "failure"),
        ("unalias", "stable", "success"),
        ("delete", "prod", "success"),
    ]:
        assert expected in actions, actions
    assert entries[0]["action"] == "delete" and entries[0]["actor"] == "anonymous"


def test_default_alias_can_move_to_another_model(four_workers):
    srv = four_workers
    assert srv.post("/api/v1/models/iris_xgboost/alias", json={"alias": "default"}).ok
    try:
        for _ in range(50):
            response = srv.post("/api/v1/predict", json={"features": ROW})
            assert response.json()["served_model"] == "iris_xgboost" and response.json()["model_name"] == "default"
    finally:
        assert srv.delete("/api/v1/aliases/default").ok
    assert srv.post("/api/v1/predict", json={"features": ROW}).json()["served_model"] == "iris_classifier"


def test_swap_under_continuous_load_fails_nothing(four_workers):
    srv = four_workers
    assert srv.post("/api/v1/models/load", json={"model_name": "hot", "model_path": "candidate.pkl"}).ok
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                for label, row in KNOWN_ROWS.items():
                    try:
                        r = session.post(srv.url + "/api/v1/predict/hot", json={"features": row}, timeout=30)
                        ok = r.status_code == 200 and r.json()["prediction_label"] == label
                        kind = "ok" if ok else f"bad {r.status_code} {r.text[:200]}"
                        version = r.headers.get("X-Model-Version", "?")
                    except requests.RequestException as exc:
                        kind, version = f"error {exc}", "?"
                    with lock:
                        outcomes[kind] += 1
                        versions[version] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for path in ("boosted.ubj", "candidate.pkl", "boosted.ubj"):
            assert srv.post("/api/v1/models/load", json={"model_name": "hot", "model_path": path}).ok
        assert srv.post("/api/v1/models/hot/rollback", json={}).ok
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(outcomes) == {"ok"}, outcomes
    assert outcomes["ok"] >= 12
    assert {"1", "2"} <= set(versions), versions  # requests were answered across the swaps
    assert srv.delete("/api/v1/models/hot").ok


def test_max_models_bounds_memory_with_lazy_reload(tmp_path):
    config = {"models": {"model_directory": str(model_dir_with_extras(tmp_path)), "max_models": 2}}
    with GunicornServer(tmp_path, config, workers=2) as srv:
        for name in ("other", "candidate"):
            assert srv.post("/api/v1/models/load", json={"model_name": name, "model_path": f"{name}.pkl"}).ok
        listing = srv.get("/api/v1/models").json()
        assert listing["count"] == 4
        for _ in range(10):
            for name in ("iris_classifier", "iris_xgboost", "other", "candidate"):
                response = srv.post(f"/api/v1/predict/{name}", json={"features": ROW})
                assert response.status_code == 200 and response.json()["prediction_label"] == "setosa"
                assert srv.get("/api/v1/models").json()["loaded_count"] <= 2


def test_idle_models_are_unloaded(tmp_path):
    config = {"models": {"model_directory": str(model_dir_with_extras(tmp_path)), "model_timeout": 1}}
    with GunicornServer(tmp_path, config, workers=1) as srv:
        assert srv.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).ok
        loaded = {m["name"]: m["loaded"] for m in srv.get("/api/v1/models").json()["models"]}
        assert loaded["iris_xgboost"] is True

        def idle_unloaded() -> bool:
            models = {m["name"]: m["loaded"] for m in srv.get("/api/v1/models").json()["models"]}
            return models["iris_xgboost"] is False

        assert poll(idle_unloaded, seconds=15)
        names = {m["name"]: m["loaded"] for m in srv.get("/api/v1/models").json()["models"]}
        assert names["iris_classifier"] is True  # the default model is never unloaded for idleness
        assert srv.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).ok  # and reloads on use


def poll(condition, seconds: float) -> bool:
    """Check ``condition`` until it holds or ``seconds`` pass (the idle reaper runs on its own clock)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def redis_url():
    url = "redis://127.0.0.1:6379/14"
    redis_or_skip(url).close()
    return url


def test_two_replicas_share_models_through_redis(tmp_path, redis_url):
    import redis

    prefix = f"test-{uuid.uuid4().hex}"
    model_dir = model_dir_with_extras(tmp_path)
    registry = {"backend": "redis", "redis_url": redis_url, "redis_prefix": prefix}
    config = {"models": {"model_directory": str(model_dir)}, "registry": registry}
    try:
        with (
            GunicornServer(tmp_path / "a", config, workers=2) as a,
            GunicornServer(tmp_path / "b", config, workers=2) as b,
        ):
            assert a.post("/api/v1/models/load", json={"model_name": "shared", "model_path": "candidate.pkl"}).ok
            for _ in range(50):
                assert b.post("/api/v1/predict/shared", json={"features": ROW}).status_code == 200
            assert b.delete("/api/v1/models/shared").ok
            for _ in range(50):
                assert_error(a.post("/api/v1/predict/shared", json={"features": ROW}), 404)
            audit = b.get("/api/v1/audit").json()["entries"]
            assert [e["action"] for e in audit[:2]] == ["delete", "load"]
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
