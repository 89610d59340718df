"""Compiled trees under a real gunicorn: several workers load the same models at once, one compile
each, every worker serves the native library, and a restart compiles nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.factories import iris, write_iris_set
from tests.helpers import GunicornServer

pytestmark = pytest.mark.integration

WORKERS = 3


def compiled_lines(log: str) -> list[str]:
    """The log lines of compiles (app.native_trees_cache logs one per library built)."""
    return [line for line in log.splitlines() if "compiled_trees: compiled" in line]


def kernels_by_worker(server: GunicornServer, model: str) -> dict[int, str]:
    seen: dict[int, str] = {}
    for _ in range(600):
        info = server.get(f"/api/v1/models/{model}/info").json()
        seen[info["worker_pid"]] = info["details"]["kernel"]
        if len(seen) == WORKERS:
            break
    return seen


def test_workers_share_one_compile_per_model_and_a_restart_reuses_it(tmp_path: Path):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    model_dir = write_iris_set(tmp_path / "models")
    forest = RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(*iris())
    joblib.dump(forest, model_dir / "forest.joblib")
    (model_dir / "forest.meta.json").write_text(json.dumps({"compiled_trees": True}))
    xgb_sidecar = model_dir / "iris_xgboost.meta.json"
    xgb_sidecar.write_text(json.dumps({**json.loads(xgb_sidecar.read_text()), "compiled_trees": True}))
    config = {"models": {"model_directory": str(model_dir)}, "logging": {"level": "INFO"}}

    with GunicornServer(tmp_path, config, workers=WORKERS) as first:
        for model in ("forest", "iris_xgboost"):
            kernels = kernels_by_worker(first, model)
            assert set(kernels.values()) == {"treelite-native"} and len(kernels) == WORKERS, kernels
        X, _ = iris()
        body = first.post("/api/v1/batch-predict", json={"features": X.tolist(), "model_name": "forest"}).json()
        assert [p["prediction"] for p in body["predictions"]] == forest.predict(X).tolist()
        assert len(compiled_lines(first.log())) == 2, first.log()
    libraries = sorted((tmp_path / "state" / "compiled-trees").glob("*.so"))
    assert len(libraries) == 2

    with GunicornServer(tmp_path, config, workers=WORKERS) as second:
        assert set(kernels_by_worker(second, "forest").values()) == {"treelite-native"}
        assert compiled_lines(second.log()) == [], second.log()
        answer = second.post("/api/v1/predict/forest", json={"features": X[0].tolist()}).json()
        np.testing.assert_allclose(answer["probabilities"], forest.predict_proba(X[:1])[0], rtol=0, atol=1e-6)
    assert sorted((tmp_path / "state" / "compiled-trees").glob("*.so")) == libraries
