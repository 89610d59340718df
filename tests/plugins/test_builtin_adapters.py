"""The three built-in adapters: sklearn (joblib, pickle, skops), xgboost (native boosters, pickles), custom."""

from __future__ import annotations

import functools
import json

import joblib
import numpy as np
import pytest

from app.adapters import AdapterSettings
from app.plugin_manager import build_plugin_manager
from tests.factories import (
    IRIS_FEATURES,
    KNOWN_ROWS,
    iris,
    write_custom_model,
    write_sidecar,
    write_sklearn_classifier,
    write_sklearn_regressor,
    write_skops_classifier,
    write_xgboost_classifier,
)
from tests.helpers import assert_error

ROWS = iris()[0][::10]  # 15 rows, every class


class Doubler:
    """Not a scikit-learn type: skops does not trust it by default."""

    def predict(self, X):
        return 2 * np.asarray(X)[:, 0]


@pytest.fixture
def client(make_app):
    """An app that loads nothing at start-up: each test loads what it needs."""
    return make_app(models={"auto_load": False}).test_client()


def adapter(name: str, threads: int = 1):
    return build_plugin_manager(None, AdapterSettings(compute_threads=threads)).adapters[name]


def load(client, name: str, path: str, model_type: str | None = None):
    body = {"model_name": name, "model_path": path}
    if model_type:
        body["model_type"] = model_type
    return client.post("/api/v1/models/load", json=body)


def load_ok(client, name: str, path: str, model_type: str | None = None) -> dict:
    response = load(client, name, path, model_type)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["model"]


def batch(client, name: str, rows, probabilities: bool = True) -> list[dict]:
    body = {"model_name": name, "features": np.asarray(rows).tolist(), "return_probabilities": probabilities}
    response = client.post("/api/v1/batch-predict", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["predictions"]


def assert_classifier_matches(client, name: str, estimator, rows=ROWS, atol: float = 1e-9) -> None:
    """The API's class indices and probabilities are the estimator's own, row by row."""
    results = batch(client, name, rows)
    classes = list(estimator.classes_)
    assert [classes[r["prediction"]] for r in results] == list(estimator.predict(rows))
    np.testing.assert_allclose([r["probabilities"] for r in results], estimator.predict_proba(rows), rtol=0, atol=atol)


# --- scikit-learn ------------------------------------------------------------------


@functools.cache
def _pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*iris())


@pytest.mark.parametrize("suffix", [".joblib", ".pkl"])
def test_sklearn_classifier_predicts_as_the_estimator(client, model_dir, suffix):
    path = write_sklearn_classifier(model_dir, name="clf", suffix=suffix)
    info = load_ok(client, "clf", path.name)
    assert (info["adapter"], info["task"], info["model_class"]) == (
        "sklearn",
        "classification",
        "sklearn.LogisticRegression",
    )
    assert info["n_features"] == 4 and info["classes"] == [0, 1, 2]
    assert_classifier_matches(client, "clf", joblib.load(path))


def test_sklearn_regressor(client, model_dir):
    path = write_sklearn_regressor(model_dir, name="width")
    estimator = joblib.load(path)
    info = load_ok(client, "width", path.name)
    assert info["task"] == "regression" and info["classes"] is None and info["labels"] is None

    row = [5.1, 3.5, 1.4]
    body = client.post("/api/v1/predict/width", json={"features": row, "return_probabilities": True}).get_json()
    assert isinstance(body["prediction"], float)
    assert body["prediction"] == pytest.approx(estimator.predict([row])[0], abs=1e-9)
    assert body.get("prediction_label") is None and "probabilities" not in body and "confidence" not in body

    results = batch(client, "width", ROWS[:, :3])
    np.testing.assert_allclose([r["prediction"] for r in results], estimator.predict(ROWS[:, :3]), rtol=0, atol=1e-9)
    assert all(r["confidence"] is None and r.get("prediction_label") is None for r in results)
    assert all("probabilities" not in r for r in results)


def test_sklearn_pipeline_fitted_on_a_numpy_array(client, model_dir):
    joblib.dump(_pipeline(), model_dir / "pipe.joblib")
    info = load_ok(client, "pipe", "pipe.joblib")
    assert info["model_class"] == "sklearn.Pipeline" and info["n_features"] == 4 and info["feature_names"] is None
    assert_classifier_matches(client, "pipe", _pipeline())


def test_sklearn_estimator_fitted_on_a_dataframe(client, model_dir):
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    frame = pd.DataFrame(X, columns=IRIS_FEATURES)
    estimator = LogisticRegression(max_iter=1000).fit(frame, y)
    joblib.dump(estimator, model_dir / "named.joblib")
    info = load_ok(client, "named", "named.joblib")
    assert info["feature_names"] == IRIS_FEATURES

    row = dict(zip(reversed(IRIS_FEATURES), reversed(KNOWN_ROWS["virginica"]), strict=True))
    body = client.post("/api/v1/predict/named", json={"features": row}).get_json()
    expected = estimator.predict_proba(pd.DataFrame([KNOWN_ROWS["virginica"]], columns=IRIS_FEATURES))[0]
    np.testing.assert_allclose(body["probabilities"], expected, rtol=0, atol=1e-9)


def test_sklearn_estimator_with_feature_names_without_pandas(client, model_dir):
    """``feature_names_in_`` is what fitting on a DataFrame records; sklearn then warns on every plain array.

    The adapter silences that warning (pytest turns warnings into errors here), and the core
    orders named features for the model.
    """
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(max_iter=1000).fit(*iris())
    estimator.feature_names_in_ = np.asarray(IRIS_FEATURES, dtype=object)
    joblib.dump(estimator, model_dir / "named.joblib")
    info = load_ok(client, "named", "named.joblib")
    assert info["feature_names"] == IRIS_FEATURES

    row = dict(zip(reversed(IRIS_FEATURES), reversed(KNOWN_ROWS["virginica"]), strict=True))
    body = client.post("/api/v1/predict/named", json={"features": row}).get_json()
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        expected = estimator.predict_proba([KNOWN_ROWS["virginica"]])[0]
    np.testing.assert_allclose(body["probabilities"], expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("where", ["estimator", "pipeline step"])
def test_sklearn_n_jobs_is_pinned_to_compute_threads(tmp_path, where):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    knn = KNeighborsClassifier(n_neighbors=3, n_jobs=-1)
    estimator = knn if where == "estimator" else make_pipeline(StandardScaler(), knn)
    estimator.fit(*iris())
    joblib.dump(estimator, tmp_path / "knn.joblib")

    model = adapter("sklearn", threads=3).load(tmp_path / "knn.joblib", {})
    params = model.estimator.get_params(deep=True)
    assert {key: value for key, value in params.items() if key.endswith("n_jobs")} == (
        {"n_jobs": 3} if where == "estimator" else {"kneighborsclassifier__n_jobs": 3}
    )
    np.testing.assert_array_equal(model.predict(ROWS), estimator.predict(ROWS))


@pytest.mark.parametrize(
    ("content", "contains"),
    [({"a": 1}, "dict, which has no predict method"), ([1, 2, 3], "list, which has no predict method")],
    ids=["dict", "list"],
)
def test_sklearn_file_without_a_model_is_refused(client, model_dir, content, contains):
    joblib.dump(content, model_dir / "not_a_model.joblib")
    assert_error(load(client, "nope", "not_a_model.joblib"), 422, contains=contains)
    assert_error(client.get("/api/v1/models/nope/info"), 404)


def test_skops_file_loads(client, model_dir):
    path = write_skops_classifier(model_dir, name="safe")
    info = load_ok(client, "safe", path.name)
    assert info["adapter"] == "sklearn" and info["model_class"] == "sklearn.LogisticRegression"
    assert_classifier_matches(client, "safe", joblib.load(write_sklearn_classifier(model_dir, name="reference")))


def test_skops_file_with_an_untrusted_type_is_refused(client, model_dir):
    import skops.io as sio

    sio.dump(Doubler(), model_dir / "doubler.skops")
    assert sio.get_untrusted_types(file=model_dir / "doubler.skops") == [f"{__name__}.Doubler"]
    body = assert_error(load(client, "doubler", "doubler.skops"), 422, contains="does not trust")
    assert "Doubler" in body["message"]
    assert_error(client.get("/api/v1/models/doubler/info"), 404)


# --- XGBoost -------------------------------------------------------------------------


@functools.cache
def _xgb_binary():
    import xgboost as xgb

    X, y = iris()
    return xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=0).fit(X, (y == 2).astype(int))


@functools.cache
def _xgb_regressor():
    import xgboost as xgb

    X, _ = iris()
    return xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1, random_state=0).fit(X[:, :3], X[:, 3])


@functools.cache
def _xgb_early_stopped():
    import xgboost as xgb

    X, y = iris()
    estimator = xgb.XGBClassifier(
        n_estimators=50, max_depth=2, learning_rate=1.0, early_stopping_rounds=2, n_jobs=1, random_state=0
    )
    estimator.fit(X[::2], y[::2], eval_set=[(X[1::2], y[1::2])], verbose=False)
    assert estimator.best_iteration + 1 < estimator.get_booster().num_boosted_rounds()  # trees past the best
    return estimator


def _own_estimator(path, kind: str):
    """XGBoost's own scikit-learn estimator, loaded from the same native file."""
    import xgboost as xgb

    estimator = xgb.XGBRegressor() if kind == "regressor" else xgb.XGBClassifier()
    estimator.load_model(path)
    return estimator


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_xgboost_native_classifier_predicts_as_xgboost(client, model_dir, suffix, kind):
    if kind == "multiclass":
        path = write_xgboost_classifier(model_dir, name="booster", suffix=suffix)
    else:
        path = model_dir / f"booster{suffix}"
        _xgb_binary().save_model(path)
    info = load_ok(client, "booster", path.name)
    assert (info["adapter"], info["model_class"], info["task"]) == ("xgboost", "xgboost.Booster", "classification")
    assert info["classes"] == ([0, 1, 2] if kind == "multiclass" else [0, 1]) and info["n_features"] == 4
    assert info["details"]["objective"] == ("multi:softprob" if kind == "multiclass" else "binary:logistic")
    assert_classifier_matches(client, "booster", _own_estimator(path, kind), atol=1e-6)


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_xgboost_native_regressor_predicts_as_xgboost(client, model_dir, suffix):
    path = model_dir / f"reg{suffix}"
    _xgb_regressor().save_model(path)
    info = load_ok(client, "reg", path.name)
    assert info["task"] == "regression" and info["classes"] is None and info["n_features"] == 3
    rows = ROWS[:, :3]
    results = batch(client, "reg", rows)
    expected = _own_estimator(path, "regressor").predict(rows)
    np.testing.assert_allclose([r["prediction"] for r in results], expected, rtol=0, atol=1e-6)
    assert all(r["confidence"] is None and "probabilities" not in r for r in results)


def test_xgboost_pickled_classifier_with_model_type(client, model_dir):
    path = write_xgboost_classifier(model_dir, name="xgb_pickle", suffix=".pkl")
    info = load_ok(client, "xgb_pickle", path.name, model_type="xgboost")
    assert (info["adapter"], info["model_class"]) == ("xgboost", "xgboost.XGBClassifier")
    assert info["classes"] == [0, 1, 2]
    assert_classifier_matches(client, "xgb_pickle", joblib.load(path), atol=1e-6)


def test_xgboost_refuses_a_pickle_that_is_not_xgboost(client, model_dir):
    path = write_sklearn_classifier(model_dir, name="sk", suffix=".pkl")
    assert_error(load(client, "sk", path.name, model_type="xgboost"), 422, contains="not an XGBoost model")


@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_xgboost_nthread_is_pinned_to_compute_threads(tmp_path, suffix):
    path = write_xgboost_classifier(tmp_path, name="booster", suffix=suffix)
    model = adapter("xgboost", threads=3).load(path, {})
    config = json.loads(model.booster.save_config())["learner"]["generic_param"]
    assert config["nthread"] == "3"


@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_xgboost_early_stopped_model_predicts_as_xgboost(client, model_dir, suffix):
    estimator = _xgb_early_stopped()
    path = model_dir / f"early{suffix}"
    if suffix == ".pkl":
        joblib.dump(estimator, path)
    else:
        estimator.save_model(path)
    load_ok(client, "early", path.name, model_type="xgboost")
    assert_classifier_matches(client, "early", estimator, atol=1e-6)


# --- custom Python models ------------------------------------------------------------

TWO_CLASSES = """
import numpy as np


class AlwaysZero:
    classes_ = [0, 1]

    def load(self):
        pass

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


class AlwaysOne(AlwaysZero):
    def predict(self, X):
        return np.ones(len(X), dtype=int)
"""

NO_MODEL_CLASS = """
class Helper:
    def predict(self, X):
        return X
"""

CLASSIFIER_WITHOUT_CLASSES = """
import numpy as np


class Unlabelled:
    n_features = 2

    def load(self):
        pass

    def predict(self, X):
        return np.ones(len(X), dtype=int)

    def predict_proba(self, X):
        return np.tile([0.25, 0.75], (len(X), 1))
"""

LOAD_RETURNS_FALSE = """
class NotReady:
    def load(self):
        return False

    def predict(self, X):
        return X[:, 0]
"""


def test_custom_model_loads_predicts_and_gives_probabilities(client, model_dir):
    path = write_custom_model(model_dir)
    info = load_ok(client, "threshold", path.name)
    assert (info["adapter"], info["task"], info["classes"], info["n_features"]) == (
        "custom",
        "classification",
        [0, 1],
        4,
    )
    assert info["model_class"].endswith(".ThresholdModel")

    big = client.post("/api/v1/predict/threshold", json={"features": [1, 1, 5, 1]}).get_json()
    assert (big["prediction"], big["prediction_label"], big["probabilities"]) == (1, "1", [0.0, 1.0])
    small = client.post("/api/v1/predict/threshold", json={"features": [1, 1, 2, 1]}).get_json()
    assert (small["prediction"], small["probabilities"]) == (0, [1.0, 0.0])
    results = batch(client, "threshold", [[1, 1, 5, 1], [1, 1, 2, 1]])
    assert [(r["prediction"], r["confidence"]) for r in results] == [(1, 1.0), (0, 1.0)]


def test_custom_model_names_its_class_in_the_sidecar(client, model_dir):
    write_custom_model(model_dir, name="two", source=TWO_CLASSES)
    assert_error(load(client, "two", "two.py"), 422, contains="found: AlwaysZero, AlwaysOne")

    write_sidecar(model_dir / "two.py", class_name="AlwaysOne", n_features=2)
    load_ok(client, "two", "two.py")
    assert client.post("/api/v1/predict/two", json={"features": [0, 0]}).get_json()["prediction"] == 1


def test_custom_file_without_a_model_class_is_refused(client, model_dir):
    write_custom_model(model_dir, name="helper", source=NO_MODEL_CLASS)
    assert_error(load(client, "helper", "helper.py"), 422, contains="expected exactly one class")


def test_custom_classifier_needs_classes_or_labels(client, model_dir):
    write_custom_model(model_dir, name="unlabelled", source=CLASSIFIER_WITHOUT_CLASSES)
    assert_error(load(client, "unlabelled", "unlabelled.py"), 422, contains="needs classes_")

    write_sidecar(model_dir / "unlabelled.py", labels=["no", "yes"])
    load_ok(client, "unlabelled", "unlabelled.py")
    body = client.post("/api/v1/predict/unlabelled", json={"features": [1, 2]}).get_json()
    assert (body["prediction"], body["prediction_label"], body["probabilities"]) == (1, "yes", [0.25, 0.75])


def test_custom_classifier_by_sidecar_task_needs_classes(client, model_dir):
    source = TWO_CLASSES.replace("    classes_ = [0, 1]\n", "")
    write_custom_model(model_dir, name="tasked", source=source, task="classification", class_name="AlwaysOne")
    assert_error(load(client, "tasked", "tasked.py"), 422, contains="needs classes_")


def test_custom_load_returning_false_is_refused(client, model_dir):
    write_custom_model(model_dir, name="not_ready", source=LOAD_RETURNS_FALSE)
    assert_error(load(client, "not_ready", "not_ready.py"), 422, contains="load() returned False")
    assert_error(client.get("/api/v1/models/not_ready/info"), 404)
