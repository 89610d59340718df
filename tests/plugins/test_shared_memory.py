"""The sharing contract: built-in adapters say whether their models share memory; a third party that says
nothing still serves, reported private. Shared forests answer exactly as scikit-learn does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor

from app.adapters import AdapterSettings, ModelSharing
from app.model_memory import file_mappings
from app.plugin_manager import build_plugin_manager
from app.shared_trees import LayoutStore, SharingUnavailable
from tests.factories import write_sidecar
from tests.plugins.conftest import adapter_plugin_source

pytestmark = pytest.mark.filterwarnings("error")


def forest_file(directory: Path, estimator, name: str = "forest", regression: bool = False) -> tuple[Path, object]:
    X, y = make_classification(n_samples=1500, n_features=8, n_informative=5, n_classes=3, random_state=1)
    estimator.fit(X, X[:, 0] * 2 + y if regression else y)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.joblib"
    joblib.dump(estimator, path)
    return path, estimator


def sklearn_adapter(tmp_path: Path, shared: bool = True):
    settings = AdapterSettings(shared_models_dir=tmp_path / "shared" if shared else None)
    return build_plugin_manager(None, settings).adapters["sklearn"]


ROWS = np.random.default_rng(3).normal(size=(2000, 8)) * 3


@pytest.mark.parametrize(
    "estimator",
    [RandomForestClassifier(25, random_state=0), ExtraTreesClassifier(15, random_state=0)],
    ids=["random-forest", "extra-trees"],
)
def test_a_shared_forest_answers_bit_for_bit_as_the_estimator(tmp_path, estimator):
    path, fitted = forest_file(tmp_path / "models", estimator)
    model = sklearn_adapter(tmp_path).load(path, {})
    assert model.sharing().mode == "mapped_file"
    assert model.describe().extra["kernel"] == "shared-forest"
    assert np.array_equal(model.predict_proba(ROWS), fitted.predict_proba(ROWS))
    assert np.array_equal(model.predict(ROWS), fitted.predict(ROWS))
    labels, proba = model.predict_with_proba(ROWS[:1])
    assert np.array_equal(proba, fitted.predict_proba(ROWS[:1])) and labels[0] == fitted.predict(ROWS[:1])[0]
    assert list(model.describe().classes) == list(fitted.classes_)


def test_a_shared_forest_regressor_answers_bit_for_bit(tmp_path):
    path, fitted = forest_file(tmp_path / "models", RandomForestRegressor(10, random_state=0), regression=True)
    model = sklearn_adapter(tmp_path).load(path, {})
    assert model.describe().task == "regression" and model.sharing().mode == "mapped_file"
    assert np.array_equal(model.predict(ROWS), fitted.predict(ROWS))


def test_the_second_load_maps_the_layout_without_unpickling(tmp_path, monkeypatch):
    path, _ = forest_file(tmp_path / "models", RandomForestClassifier(10, random_state=0))
    adapter = sklearn_adapter(tmp_path)
    first = adapter.load(path, {})
    monkeypatch.setattr(joblib, "load", lambda *a, **k: pytest.fail("unpickled although the layout exists"))
    second = adapter.load(path, {})
    assert second.sharing().files == first.sharing().files
    mapped = file_mappings()
    assert mapped is not None and str(first.sharing().files[0]) in mapped


def test_the_mapping_goes_when_the_model_goes(tmp_path):
    path, _ = forest_file(tmp_path / "models", RandomForestClassifier(10, random_state=0))
    model = sklearn_adapter(tmp_path).load(path, {})
    layout = str(model.sharing().files[0])
    assert layout in file_mappings()
    del model
    assert layout not in file_mappings()


def test_models_without_a_layout_stay_private_and_say_why(tmp_path, model_dir):
    adapter = sklearn_adapter(tmp_path)
    model = adapter.load(model_dir / "iris_classifier.joblib", {})
    sharing = model.sharing()
    assert sharing.mode == "private" and "LogisticRegression" in sharing.reason
    assert not list((tmp_path / "shared").glob("*.lock"))  # a file that cannot hold a forest waits for nobody
    path, _ = forest_file(tmp_path / "models", RandomForestClassifier(5, random_state=0))
    assert "share_memory: false" in adapter.load(path, {"share_memory": False}).sharing().reason
    assert "share_models is off" in sklearn_adapter(tmp_path, shared=False).load(path, {}).sharing().reason


def test_xgboost_and_custom_models_say_they_are_private(model_dir):
    adapters = build_plugin_manager(None, AdapterSettings()).adapters
    boosted = adapters["xgboost"].load(model_dir / "iris_xgboost.json", {})
    assert boosted.sharing().mode == "private" and "XGBoost" in boosted.sharing().reason


@pytest.mark.parametrize("damage", ["child-backwards", "truncated", "feature-out-of-range"])
def test_a_damaged_layout_is_refused_then_written_again(tmp_path, damage):
    path, fitted = forest_file(tmp_path / "models", RandomForestClassifier(5, random_state=0))
    model = sklearn_adapter(tmp_path).load(path, {})
    layout = model.sharing().files[0]
    meta_path = layout.with_name(layout.name + ".json")
    import json

    description = json.loads(meta_path.read_text())
    del model
    os.chmod(layout, 0o600)
    data = bytearray(layout.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        name = "left" if damage == "child-backwards" else "feature"
        offset = description["arrays"][name][0]
        data[offset : offset + 4] = np.int32(0 if name == "left" else 99).tobytes()
    layout.write_bytes(bytes(data))
    with pytest.raises(SharingUnavailable):
        LayoutStore(layout.parent).find(layout.name.removesuffix(".forest"))
    # The next load writes the layout again and serves it, shared and right.
    again = sklearn_adapter(tmp_path).load(path, {})
    assert again.sharing().mode == "mapped_file"
    assert np.array_equal(again.predict_proba(ROWS), fitted.predict_proba(ROWS))


def test_a_third_party_adapter_that_says_nothing_serves_unshared(make_app, model_dir, write_plugin):
    write_plugin("tripler", adapter_plugin_source())
    (model_dir / "sum.triple").write_text("3")
    client = make_app().test_client()
    loaded = client.post("/api/v1/models/load", json={"model_name": "tripled", "model_path": "sum.triple"})
    assert loaded.status_code == 200, loaded.get_json()
    assert client.post("/api/v1/predict/tripled", json={"features": [1, 2, 3]}).get_json()["prediction"] == 18
    memory = client.get("/api/v1/models/tripled/info").get_json()["memory"]
    assert memory["sharing"] == "private" and memory["shared"] is False
    assert "does not say" in memory["reason"] and memory["private_bytes"] > 0 and memory["shared_bytes"] == 0


def test_info_and_status_report_a_shared_forest(make_app, model_dir, tmp_path):
    path, fitted = forest_file(model_dir, RandomForestClassifier(20, random_state=0), name="woods")
    write_sidecar(path, labels=["a", "b", "c"])
    client = make_app().test_client()
    body = client.post("/api/v1/predict/woods", json={"features": ROWS[0].tolist()}).get_json()
    assert body["probabilities"] == fitted.predict_proba(ROWS[:1])[0].tolist()
    memory = client.get("/api/v1/models/woods/info").get_json()["memory"]
    assert memory["sharing"] == "mapped_file" and memory["shared"] is True and memory["source"] == "smaps"
    assert memory["mapped_bytes"] > 0 and memory["resident_bytes"] > 0 and memory["pss_bytes"] > 0
    status = client.get("/api/v1/status").get_json()
    assert memory["files"][0] in status["model_memory"]["mapped_layouts"]
    woods = next(m for m in status["models"] if m["name"] == "woods")
    assert woods["memory"]["sharing"] == "mapped_file"
    assert ModelSharing.private("x").files == ()


def test_custom_models_say_they_are_private(tmp_path):
    from tests.factories import write_custom_model

    (tmp_path / "models").mkdir()
    path = write_custom_model(tmp_path / "models")
    model = build_plugin_manager(None, AdapterSettings()).adapters["custom"].load(path, {})
    assert model.sharing().mode == "private" and "custom model" in model.sharing().reason


def test_eviction_and_idle_unload_unmap_the_layout(make_app, model_dir):
    for seed in (1, 2):
        forest_file(model_dir, RandomForestClassifier(8, random_state=seed), f"f{seed}")
    app = make_app(models={"max_models": 2, "model_timeout": 3600})
    client = app.test_client()
    registry = app.extensions["modelserve"].registry
    row = {"features": ROWS[0].tolist()}
    assert client.post("/api/v1/predict/f1", json=row).status_code == 200
    layout = client.get("/api/v1/models/f1/info").get_json()["memory"]["files"][0]
    assert layout in client.get("/api/v1/status").get_json()["model_memory"]["mapped_layouts"]
    # Two more models in a cache of two: f1 is the least recently used, and goes.
    assert client.post("/api/v1/predict/f2", json=row).status_code == 200
    assert client.post("/api/v1/predict/iris_xgboost", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200
    assert layout not in client.get("/api/v1/status").get_json()["model_memory"]["mapped_layouts"]
    # Back on use (mapped again, not unpickled), then unloaded for idleness.
    assert client.post("/api/v1/predict/f1", json=row).status_code == 200
    assert layout in client.get("/api/v1/status").get_json()["model_memory"]["mapped_layouts"]
    assert ("f1", 1) in registry.unload_idle(now=time.monotonic() + 7200)
    assert layout not in client.get("/api/v1/status").get_json()["model_memory"]["mapped_layouts"]


@pytest.mark.parametrize("regression", [False, True], ids=["classifier", "regressor"])
def test_without_a_c_compiler_numpy_walks_the_shared_layout_exactly(tmp_path, monkeypatch, regression):
    from app import shared_trees

    monkeypatch.setattr(shared_trees, "_KERNELS", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    estimator = RandomForestRegressor(12, random_state=0) if regression else RandomForestClassifier(12, random_state=0)
    path, fitted = forest_file(tmp_path / "models", estimator, regression=regression)
    model = sklearn_adapter(tmp_path).load(path, {})
    assert model.sharing().mode == "mapped_file" and model.describe().extra["kernel"] == "shared-forest-numpy"
    if regression:
        assert np.array_equal(model.predict(ROWS), fitted.predict(ROWS))
    else:
        assert np.array_equal(model.predict_proba(ROWS), fitted.predict_proba(ROWS))
        assert np.array_equal(model.predict_proba(ROWS[:1]), fitted.predict_proba(ROWS[:1]))
