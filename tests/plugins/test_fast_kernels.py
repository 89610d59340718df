"""The adapters' fast paths give the libraries' own answers, and step aside when they would not.

scikit-learn estimators whose internals the adapter knows are called without
the per-call input checks; XGBoost boosters through the C function
``inplace_predict`` calls; tree ensembles, when asked, through Treelite (a
compiled native library, else GTIL; see also test_native_trees.py). Each is
used only if it agrees with the plain model when the model loads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.adapters import AdapterSettings
from app.plugin_manager import build_plugin_manager
from tests.factories import iris


def adapter(name: str, compiled: bool = False, cache: Path | None = None) -> Any:
    """The named adapter; ``cache``: where compiled tree libraries go (None: no native library, GTIL serves)."""
    settings = AdapterSettings(compiled_trees=compiled, compiled_trees_cache=cache)
    return build_plugin_manager(None, settings).adapters[name]


def rows() -> np.ndarray:
    """Iris rows and rows far outside them (other leaves, other classes)."""
    X, _ = iris()
    rng = np.random.default_rng(7)
    return np.vstack([X, rng.normal(size=(100, 4)) * 20, np.zeros((1, 4))])


def save(estimator: Any, directory: Path, name: str, **metadata: Any) -> Path:
    import joblib

    path = directory / f"{name}.joblib"
    joblib.dump(estimator, path)
    if metadata:
        path.with_name(f"{name}.meta.json").write_text(json.dumps(metadata))
    return path


def sklearn_estimators() -> list[Any]:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    return [
        pytest.param(LogisticRegression(max_iter=1000), "logistic-internals", id="logistic-multiclass"),
        pytest.param(LogisticRegression(max_iter=1000), "logistic-internals", id="logistic-binary"),
        pytest.param(RandomForestClassifier(n_estimators=15, random_state=0), "forest-internals", id="forest"),
        pytest.param(ExtraTreesClassifier(n_estimators=15, random_state=0), "forest-internals", id="extra-trees"),
        pytest.param(DecisionTreeClassifier(max_depth=3, random_state=0), "tree-internals", id="tree"),
    ]


@pytest.mark.parametrize(("estimator", "kernel"), sklearn_estimators())
def test_sklearn_internals_give_sklearns_answers_exactly(tmp_path, request, estimator, kernel):
    X, y = iris()
    if "binary" in request.node.callspec.id:
        y = (y == 2).astype(int)
    estimator.fit(X, y)
    model = adapter("sklearn").load(save(estimator, tmp_path, "m"), {})
    assert model.describe().extra["kernel"] == kernel
    probe = rows()
    labels, probabilities = model.predict_with_proba(probe)
    np.testing.assert_array_equal(labels, estimator.predict(probe))
    np.testing.assert_array_equal(probabilities, estimator.predict_proba(probe))
    np.testing.assert_array_equal(model.predict(probe), estimator.predict(probe))
    np.testing.assert_array_equal(model.predict_proba(probe), estimator.predict_proba(probe))
    for row in probe[:40]:  # one row at a time too: kernels may take another path for one row
        one = row[None, :]
        labels, probabilities = model.predict_with_proba(one)
        np.testing.assert_array_equal(labels, estimator.predict(one))
        np.testing.assert_array_equal(probabilities, estimator.predict_proba(one))


def test_a_fast_path_that_disagrees_only_on_single_rows_is_not_used(tmp_path, monkeypatch, caplog):
    from sklearn.linear_model import LogisticRegression

    sklearn_adapter = adapter("sklearn")
    plugin = sys.modules[type(sklearn_adapter).__module__]
    right = plugin._one_row

    def slightly_off(scores: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = right(scores, classes)
        return labels, probabilities + 1e-12

    monkeypatch.setattr(plugin, "_one_row", slightly_off)
    estimator = LogisticRegression(max_iter=1000).fit(*iris())
    model = sklearn_adapter.load(save(estimator, tmp_path, "m"), {})
    assert model.describe().extra["kernel"] == "sklearn"
    assert "disagrees" in caplog.text


def test_an_estimator_without_known_internals_is_called_as_is(tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = iris()
    estimator = LinearRegression().fit(X, y)
    model = adapter("sklearn").load(save(estimator, tmp_path, "lin"), {})
    assert model.describe().extra["kernel"] == "sklearn"
    assert not hasattr(model, "predict_with_proba")
    np.testing.assert_array_equal(model.predict(rows()), estimator.predict(rows()))


def test_a_pipeline_runs_its_transforms_once_then_its_final_steps_kernel(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*iris())
    model = adapter("sklearn").load(save(pipeline, tmp_path, "pipe"), {})
    assert model.describe().extra["kernel"].startswith("pipeline+")
    for batch in (rows()[:1], rows()):
        labels, probabilities = model.predict_with_proba(batch)
        np.testing.assert_array_equal(labels, pipeline.predict(batch))
        np.testing.assert_array_equal(probabilities, pipeline.predict_proba(batch))


def test_histgradientboosting_gives_both_answers_from_one_call(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    estimator = HistGradientBoostingClassifier(max_iter=10).fit(*iris())
    model = adapter("sklearn").load(save(estimator, tmp_path, "hgb"), {})
    assert model.describe().extra["kernel"] == "argmax-proba"
    labels, probabilities = model.predict_with_proba(rows())
    np.testing.assert_array_equal(labels, estimator.predict(rows()))
    np.testing.assert_array_equal(probabilities, estimator.predict_proba(rows()))


def test_a_fast_path_that_disagrees_is_not_used(tmp_path, monkeypatch, caplog):
    from sklearn.linear_model import LogisticRegression

    sklearn_adapter = adapter("sklearn")
    plugin = sys.modules[type(sklearn_adapter).__module__]
    wrong = plugin._Kernel("wrong", lambda X: np.full((len(X), 3), 1 / 3), np.array([0, 1, 2]))
    monkeypatch.setattr(plugin, "_internal_kernel", lambda estimator: wrong)
    estimator = LogisticRegression(max_iter=1000).fit(*iris())
    model = sklearn_adapter.load(save(estimator, tmp_path, "m"), {})
    assert model.describe().extra["kernel"] == "sklearn"
    np.testing.assert_array_equal(model.predict_proba(rows()), estimator.predict_proba(rows()))
    assert "disagrees" in caplog.text


def xgb_boosters() -> list[Any]:
    return [
        pytest.param("multi:softprob", id="multiclass"),
        pytest.param("binary:logistic", id="binary"),
        pytest.param("reg:squarederror", id="regressor"),
    ]


def train_xgb(objective: str, early_stopping: bool = False) -> Any:
    import xgboost as xgb

    X, y = iris()
    params: dict[str, Any] = {"n_estimators": 30, "max_depth": 3, "n_jobs": 1, "random_state": 0}
    if objective.startswith("reg"):
        return xgb.XGBRegressor(objective=objective, **params).fit(X[:, :3], X[:, 3])
    if objective.startswith("binary"):
        y = (y == 2).astype(int)
    if early_stopping:
        params.update(n_estimators=200, early_stopping_rounds=3)
        return xgb.XGBClassifier(objective=objective, **params).fit(X, y, eval_set=[(X, y)], verbose=False)
    return xgb.XGBClassifier(objective=objective, **params).fit(X, y)


@pytest.mark.parametrize("objective", xgb_boosters())
@pytest.mark.parametrize(
    ("compiled", "kernel"),
    [(False, "direct"), (True, "treelite-native"), (True, "treelite-gtil")],
    ids=["direct", "treelite-native", "treelite-gtil"],
)
def test_xgboost_fast_paths_give_xgboosts_answers(tmp_path, trees_cache, objective, compiled, kernel):
    estimator = train_xgb(objective)
    path = tmp_path / "m.json"
    estimator.save_model(path)
    model = adapter("xgboost", compiled, trees_cache if kernel == "treelite-native" else None).load(path, {})
    assert model.describe().extra["kernel"] == kernel
    probe = rows()[:, : estimator.n_features_in_]
    expected = estimator.get_booster().inplace_predict(probe)
    tolerance = 1e-6 if compiled else 0
    np.testing.assert_allclose(model._raw(probe).reshape(expected.shape), expected, rtol=0, atol=tolerance)
    if objective != "reg:squarederror":
        labels, probabilities = model.predict_with_proba(probe)
        np.testing.assert_array_equal(labels.astype(int), estimator.predict(probe))
        np.testing.assert_allclose(probabilities, estimator.predict_proba(probe), rtol=0, atol=1e-6)


def test_xgboost_early_stopped_model_keeps_its_best_trees_on_the_direct_path(tmp_path):
    estimator = train_xgb("multi:softprob", early_stopping=True)
    path = tmp_path / "m.json"
    estimator.save_model(path)
    model = adapter("xgboost").load(path, {})
    assert model.describe().extra["kernel"] == "direct"
    np.testing.assert_array_equal(model.predict(rows()).astype(int), estimator.predict(rows()))


# --- compiled trees (Treelite: native library, else GTIL) ---------------------


def forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=25, random_state=0).fit(*iris())


@pytest.mark.parametrize(
    ("settings_default", "sidecar", "expected"),
    [
        pytest.param(False, {"compiled_trees": True}, "treelite-native", id="sidecar-asks"),
        pytest.param(True, {}, "treelite-native", id="config-default"),
        pytest.param(True, {"compiled_trees": False}, "forest-internals", id="sidecar-refuses"),
        pytest.param(False, {}, "forest-internals", id="off"),
    ],
)
def test_compiled_trees_are_enabled_per_model_or_by_config(tmp_path, trees_cache, settings_default, sidecar, expected):
    estimator = forest()
    model = adapter("sklearn", settings_default, trees_cache).load(save(estimator, tmp_path, "rf"), sidecar)
    assert model.describe().extra["kernel"] == expected
    labels, probabilities = model.predict_with_proba(rows())
    np.testing.assert_array_equal(labels, estimator.predict(rows()))
    np.testing.assert_allclose(probabilities, estimator.predict_proba(rows()), rtol=0, atol=1e-6)


def test_compiled_trees_fall_back_when_treelite_is_missing(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_treelite(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "treelite" or name.startswith("treelite."):
            raise ImportError("No module named 'treelite'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_treelite)
    estimator = forest()
    model = adapter("sklearn", cache=tmp_path / "cache").load(save(estimator, tmp_path, "rf"), {"compiled_trees": True})
    assert model.describe().extra["kernel"] == "forest-internals"
    assert "treelite is not installed" in caplog.text
    np.testing.assert_array_equal(model.predict_proba(rows()), estimator.predict_proba(rows()))


def test_compiled_trees_fall_back_for_models_treelite_does_not_know(tmp_path):
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(max_iter=1000).fit(*iris())
    model = adapter("sklearn").load(save(estimator, tmp_path, "lr"), {"compiled_trees": True})
    assert model.describe().extra["kernel"] == "logistic-internals"


def test_gtil_serves_when_there_is_no_native_library(tmp_path, caplog):
    estimator = forest()
    model = adapter("sklearn", cache=None).load(save(estimator, tmp_path, "rf"), {"compiled_trees": True})
    assert model.describe().extra["kernel"] == "treelite-gtil"
    assert "Treelite's GTIL serves" in caplog.text
    np.testing.assert_allclose(model.predict_proba(rows()), estimator.predict_proba(rows()), rtol=0, atol=1e-6)


class Wrong:
    """A compiled predictor that answers 1/3 for every class."""

    def __init__(self, *args: Any) -> None:
        pass

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), 3), 1 / 3)


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        pytest.param(("native",), "treelite-gtil", id="native-disagrees"),
        pytest.param(("native", "gtil"), "forest-internals", id="both-disagree"),
    ],
)
def test_compiled_trees_that_disagree_are_not_used(tmp_path, trees_cache, monkeypatch, caplog, wrong, expected):
    from app import compiled_trees, native_trees

    if "native" in wrong:
        monkeypatch.setattr(native_trees.NativePredictor, "predict", Wrong.predict)
    if "gtil" in wrong:
        monkeypatch.setattr(compiled_trees, "GtilPredictor", type("WrongGtil", (Wrong,), {"kernel": "treelite-gtil"}))
    model = adapter("sklearn", cache=trees_cache).load(save(forest(), tmp_path, "rf"), {"compiled_trees": True})
    assert model.describe().extra["kernel"] == expected
    assert "treelite-native fast path disagrees" in caplog.text


def test_compiled_forest_serves_sklearns_answers_over_http(make_app, model_dir, tmp_path):
    estimator = forest()
    save(estimator, model_dir, "forest", compiled_trees=True)
    client = make_app().test_client()
    info = client.get("/api/v1/models/forest/info").get_json()
    assert info["details"]["kernel"] == "treelite-native"
    # The library is cached in the server's own state directory (tests.conftest.app_config).
    assert list((tmp_path / "state" / "compiled-trees").glob("*.so"))
    X, _ = iris()
    body = client.post(
        "/api/v1/batch-predict", json={"features": X.tolist(), "model_name": "forest", "return_probabilities": True}
    ).get_json()
    np.testing.assert_allclose(
        [p["probabilities"] for p in body["predictions"]], estimator.predict_proba(X), rtol=0, atol=1e-6
    )
    assert [p["prediction"] for p in body["predictions"]] == estimator.predict(X).tolist()
