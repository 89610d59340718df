"""One copy of a forest per machine, over real gunicorn workers.

- every worker serves the forest from the one layout file, and says (from its own smaps) that the
  pages are shared, with the estimator's answers bit for bit;
- a swap under continuous load fails nothing, and afterwards no worker maps the old version;
  a rollback maps it again without unpickling;
- with XGBoost and the forest, compute threads above one and several workers, nothing hangs:
  not the workers, not a worker the master forks again after one dies (the master never loads
  OpenMP: models load after fork).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from tests.factories import KNOWN_ROWS, write_xgboost_classifier
from tests.helpers import GunicornServer, poll_until

pytestmark = pytest.mark.integration
WORKERS = 3
FEATURES = 8
ROWS = np.random.default_rng(5).normal(size=(300, FEATURES)) * 2


def write_forest(model_dir: Path, name: str, seed: int, auto_load: bool = True) -> RandomForestClassifier:
    """A modest forest (a few MB of nodes): big enough to have pages worth sharing, quick to train."""
    X, y = make_classification(n_samples=3000, n_features=FEATURES, n_informative=6, flip_y=0.2, random_state=seed)
    forest = RandomForestClassifier(n_estimators=30, random_state=seed).fit(X, y)
    joblib.dump(forest, model_dir / f"{name}.joblib")
    if not auto_load:
        (model_dir / f"{name}.meta.json").write_text('{"auto_load": false}')
    return forest


@pytest.fixture(scope="module")
def forests(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    model_dir = root / "models"
    model_dir.mkdir()
    fitted = {
        "woods": write_forest(model_dir, "woods", seed=1),
        "grove_a": write_forest(model_dir, "grove_a", seed=2, auto_load=False),
        "grove_b": write_forest(model_dir, "grove_b", seed=3, auto_load=False),
    }
    config = {"models": {"model_directory": str(model_dir), "default_model": "woods"}}
    with GunicornServer(root, config, workers=WORKERS) as srv:
        yield srv, fitted


def each_worker(srv: GunicornServer, path: str, want: int = WORKERS, accept=lambda body: True) -> dict[int, dict]:
    """GET ``path`` on fresh connections until ``want`` workers answered with a body ``accept`` likes."""
    found: dict[int, dict] = {}

    def enough() -> bool:
        body = requests.get(srv.url + path, timeout=30).json()
        if accept(body):
            found[body["worker_pid"]] = body
        return len(found) >= want

    poll_until(enough, f"{want} workers answering {path}", timeout=120, describe=lambda: found.keys())
    return found


def test_every_worker_serves_the_forest_from_one_shared_copy(forests):
    srv, fitted = forests
    infos = each_worker(srv, "/api/v1/models/woods/info")
    files = {tuple(info["memory"]["files"]) for info in infos.values()}
    assert len(files) == 1, files  # one layout for all
    for info in infos.values():
        memory = info["memory"]
        assert memory["sharing"] == "mapped_file" and memory["shared"] is True and memory["source"] == "smaps"
        assert info["details"]["kernel"] == "shared-forest"
        # Resident pages of the layout are mapped by the other workers too: shared, and little private.
        assert memory["shared_bytes"] > 0 and memory["shared_bytes"] >= 4 * memory["private_bytes"], memory
        assert memory["pss_bytes"] < memory["resident_bytes"], memory
    answers = srv.post(
        "/api/v1/batch-predict",
        json={"features": ROWS.tolist(), "model_name": "woods", "return_probabilities": True},
    ).json()
    got = np.array([item["probabilities"] for item in answers["predictions"]])
    assert np.array_equal(got, fitted["woods"].predict_proba(ROWS))


def test_a_swap_under_load_frees_the_old_version_in_every_worker(forests):
    srv, fitted = forests
    assert srv.post("/api/v1/models/load", json={"model_name": "grove", "model_path": "grove_a.joblib"}).ok
    old = srv.get("/api/v1/models/grove/info").json()["memory"]["files"][0]
    expected = {version: fitted[f"grove_{v}"].predict(ROWS[:20]).tolist() for version, v in (("1", "a"), ("2", "b"))}
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                for i in range(20):
                    r = session.post(srv.url + "/api/v1/predict/grove", json={"features": ROWS[i].tolist()}, timeout=30)
                    version = r.headers.get("X-Model-Version", "?")
                    ok = r.status_code == 200 and r.json()["prediction"] == expected[version][i]
                    with lock:
                        outcomes["ok" if ok else f"bad {r.status_code} {r.text[:200]}"] += 1

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        poll_until(lambda: outcomes["ok"] >= 30, "answers before the swap")
        assert srv.post("/api/v1/models/load", json={"model_name": "grove", "model_path": "grove_b.joblib"}).ok
        poll_until(lambda: outcomes["ok"] >= 90, "answers after the swap")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(outcomes) == {"ok"}, outcomes
    # The version loaded over the API is shared in every worker too (info loads it where it is not yet).
    # (a worker is counted once another one maps the pages it maps: they are then shared)
    infos = each_worker(
        srv, "/api/v1/models/grove/info", accept=lambda body: body["version"] == 2 and body["memory"]["shared_bytes"]
    )
    assert {info["memory"]["sharing"] for info in infos.values()} == {"mapped_file"}
    (new,) = {info["memory"]["files"][0] for info in infos.values()}
    assert new != old
    # Every worker has followed the swap (a status request syncs it) and maps the old layout no more.
    statuses = each_worker(srv, "/api/v1/status", accept=lambda body: old not in body["model_memory"]["mapped_layouts"])
    for body in statuses.values():
        assert old not in body["model_memory"]["mapped_layouts"]
    # A rollback maps the old layout again: it is still on disk, nothing is unpickled.
    assert srv.post("/api/v1/models/grove/rollback", json={}).ok
    info = srv.get("/api/v1/models/grove/info").json()
    assert info["version"] == 1 and info["memory"]["files"] == [old]
    assert srv.delete("/api/v1/models/grove").ok
    each_worker(srv, "/api/v1/status", accept=lambda body: old not in body["model_memory"]["mapped_layouts"])


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_no_openmp_hang_with_xgboost_and_the_forest_after_fork(tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    write_forest(model_dir, "woods", seed=1)
    write_xgboost_classifier(model_dir, name="boosted", suffix=".ubj")
    config = {
        "models": {"model_directory": str(model_dir), "default_model": "woods"},
        "runtime": {"compute_threads": 2},  # OpenMP pools of two threads in each worker
    }
    with GunicornServer(tmp_path, config, workers=WORKERS) as srv:
        master = srv.process.pid
        iris = KNOWN_ROWS["setosa"]

        def burst(_: int) -> tuple[int, int]:
            forest = requests.post(srv.url + "/api/v1/predict/woods", json={"features": ROWS[0].tolist()}, timeout=30)
            boosted = requests.post(srv.url + "/api/v1/predict/boosted", json={"features": iris}, timeout=30)
            return forest.status_code, boosted.status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert set(pool.map(burst, range(60))) == {(200, 200)}
        # The master has loaded neither XGBoost nor an OpenMP runtime: a worker forked again starts clean.
        assert "libxgboost" not in _maps(master) and "libgomp" not in _maps(master)
        victim = next(iter(srv.worker_pids()))
        assert "libxgboost" in _maps(victim)
        os.kill(victim, signal.SIGKILL)
        poll_until(lambda: victim not in srv.worker_pids() and len(srv.worker_pids()) == WORKERS, "a new worker")
        with ThreadPoolExecutor(max_workers=6) as pool:
            assert set(pool.map(burst, range(60))) == {(200, 200)}
        fresh = srv.worker_pids()
        each_worker(srv, "/api/v1/models/boosted/info", accept=lambda body: body["worker_pid"] in fresh)


def test_the_master_imports_the_web_stack_before_fork_and_starts_no_thread(forests):
    """api.prefork_imports: the master imported the modules (they are shared copy-on-write), nothing more."""
    srv, _ = forests
    master = srv.process.pid
    assert "modules before fork (api.prefork_imports)" in srv.log()
    assert "_multiarray_umath" in _maps(master)  # numpy, imported by the app's modules, is in the master
    # Imports only: no thread (not even BLAS's), no scikit-learn, OpenMP, XGBoost or pyarrow in the master.
    assert os.listdir(f"/proc/{master}/task") == [str(master)]
    for library in ("sklearn", "libgomp", "libxgboost", "pyarrow"):
        assert library not in _maps(master), library
    # The workers still limit their own pools after the fork.
    pools = each_worker(srv, "/api/v1/status")
    assert all(pool["num_threads"] == 1 for body in pools.values() for pool in body["compute_threads"])
