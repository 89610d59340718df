"""Tiny models trained on the fly into a test's model directory (no binaries are committed).

Each ``write_*`` function writes a model file (and its sidecar when metadata
is given) and returns the file's path. Fitted estimators are cached per
session so a test pays for training once. :func:`record` builds the desired
state's record of a model, with no file behind it.
"""

from __future__ import annotations

import functools
import json
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.desired_state import ModelRecord

IRIS_LABELS = ["setosa", "versicolor", "virginica"]
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
#: Rows whose class every reasonable iris model agrees on.
KNOWN_ROWS = {
    "setosa": [5.1, 3.5, 1.4, 0.2],
    "versicolor": [6.4, 3.2, 4.5, 1.5],
    "virginica": [6.3, 3.3, 6.0, 2.5],
}


@functools.cache
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


@functools.cache
def _logistic_regression() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(*iris())


@functools.cache
def _regressor() -> Any:
    from sklearn.linear_model import LinearRegression

    X, _ = iris()
    return LinearRegression().fit(X[:, :3], X[:, 3])  # petal width from the other three


@functools.cache
def _xgb_classifier() -> Any:
    import xgboost as xgb

    return xgb.XGBClassifier(n_estimators=10, max_depth=2, n_jobs=1, random_state=0).fit(*iris())


def write_sidecar(path: Path, **metadata: Any) -> None:
    path.with_name(path.stem + ".meta.json").write_text(json.dumps(metadata), encoding="utf-8")


def write_sklearn_classifier(
    directory: Path, name: str = "iris_classifier", suffix: str = ".joblib", **metadata: Any
) -> Path:
    import joblib

    path = directory / f"{name}{suffix}"
    joblib.dump(_logistic_regression(), path)
    if metadata:
        write_sidecar(path, **metadata)
    return path


def write_sklearn_regressor(directory: Path, name: str = "petal_width", **metadata: Any) -> Path:
    import joblib

    path = directory / f"{name}.joblib"
    joblib.dump(_regressor(), path)
    if metadata:
        write_sidecar(path, **metadata)
    return path


def write_skops_classifier(directory: Path, name: str = "iris_skops", **metadata: Any) -> Path:
    import skops.io as sio

    path = directory / f"{name}.skops"
    sio.dump(_logistic_regression(), path)
    if metadata:
        write_sidecar(path, **metadata)
    return path


def write_xgboost_classifier(
    directory: Path, name: str = "iris_xgboost", suffix: str = ".json", **metadata: Any
) -> Path:
    path = directory / f"{name}{suffix}"
    if suffix in (".json", ".ubj"):
        _xgb_classifier().save_model(path)
    else:
        import joblib

        joblib.dump(_xgb_classifier(), path)
    if metadata:
        write_sidecar(path, **metadata)
    return path


CUSTOM_MODEL_SOURCE = '''
import numpy as np


class ThresholdModel:
    """Class 1 when the petal length is over a threshold read from a file next to this one."""

    classes_ = [0, 1]
    n_features = 4

    def load(self):
        self.threshold = float((self.model_dir / "threshold.txt").read_text())

    def predict(self, X):
        return (np.asarray(X)[:, 2] > self.threshold).astype(int)

    def predict_proba(self, X):
        p = (np.asarray(X)[:, 2] > self.threshold).astype(float)
        return np.column_stack([1 - p, p])
'''


def write_custom_model(
    directory: Path, name: str = "threshold", source: str = CUSTOM_MODEL_SOURCE, **metadata: Any
) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    (directory / "threshold.txt").write_text("2.5", encoding="utf-8")
    if metadata:
        write_sidecar(path, **metadata)
    return path


# --- palmerpenguins: a DataFrame with strings and missing values ----------------------------

PENGUIN_NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_STRINGS = ["island", "sex"]
PENGUIN_LABELS = ["Adelie", "Chinstrap", "Gentoo"]
#: A row of the data set (Adelie, Torgersen), with its one missing value.
PENGUIN = {
    "island": "Torgersen",
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "sex": None,
}


@functools.cache
def penguins() -> tuple[Any, Any]:
    """The whole data set (344 rows, NaN rows included) as the features a data scientist would fit on, and species."""
    from palmerpenguins import load_penguins

    data = load_penguins()
    X = data[["island", *PENGUIN_NUMBERS, "sex"]].astype({name: object for name in PENGUIN_STRINGS})
    return X, data["species"].astype(object)


@functools.cache
def penguins_categorical() -> Any:
    """The features with the string columns as pandas categoricals (what native-categorical models fit on)."""
    X = penguins()[0].copy()
    for name in PENGUIN_STRINGS:
        X[name] = X[name].astype("category")
    return X


def penguin_records() -> list[dict[str, Any]]:
    """Every row as JSON would carry it: missing values as None."""
    X = penguins()[0]
    return [{k: (None if v is None or v != v else v) for k, v in row.items()} for row in X.to_dict("records")]


@functools.cache
def _penguins_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            ("strings", OneHotEncoder(), PENGUIN_STRINGS),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), PENGUIN_NUMBERS),
        ]
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=1000))]).fit(*penguins())


@functools.cache
def _penguins_xgboost() -> Any:
    import xgboost as xgb

    codes = penguins()[1].map({label: i for i, label in enumerate(PENGUIN_LABELS)}).astype(int)
    model = xgb.XGBClassifier(enable_categorical=True, n_estimators=20, max_depth=3, n_jobs=1, random_state=0)
    return model.fit(penguins_categorical(), codes)


@functools.cache
def _penguins_hgb() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=30, random_state=0)
    return model.fit(penguins_categorical(), penguins()[1])


def penguins_model(kind: str) -> Any:
    """The fitted in-process model of ``kind`` (pipeline, xgboost, hgb): what served answers must equal."""
    return {"pipeline": _penguins_pipeline, "xgboost": _penguins_xgboost, "hgb": _penguins_hgb}[kind]()


def write_penguins_pipeline(directory: Path, name: str = "penguins", **metadata: Any) -> Path:
    """ColumnTransformer (one-hot strings, imputed and scaled numbers) and LogisticRegression, as joblib."""
    import joblib

    path = directory / f"{name}.joblib"
    joblib.dump(_penguins_pipeline(), path)
    if metadata:
        write_sidecar(path, **metadata)
    return path


def write_penguins_xgboost(directory: Path, name: str = "penguins_xgboost", **metadata: Any) -> Path:
    """XGBoost with native categorical features, as its own JSON (categories included), labels in the sidecar."""
    path = directory / f"{name}.json"
    _penguins_xgboost().save_model(path)
    write_sidecar(path, labels=PENGUIN_LABELS, **metadata)
    return path


def write_penguins_hgb(directory: Path, name: str = "penguins_hgb", **metadata: Any) -> Path:
    """HistGradientBoostingClassifier with categorical_features="from_dtype" and NaN handled natively."""
    import joblib

    path = directory / f"{name}.joblib"
    joblib.dump(_penguins_hgb(), path)
    if metadata:
        write_sidecar(path, **metadata)
    return path


def write_penguins_models(directory: Path) -> Path:
    """The three penguins models (Pipeline, XGBoost, HistGradientBoosting) under their default names."""
    write_penguins_pipeline(directory)
    write_penguins_xgboost(directory)
    write_penguins_hgb(directory)
    return directory


def write_penguins_mlflow(directory: Path, kind: str = "pipeline", name: str | None = None, **options: Any) -> Path:
    """An MLflow model directory (``MLmodel`` and the flavor's data file) written by MLflow itself, with the
    signature MLflow infers from the training DataFrame. ``options`` go to ``save_model``."""
    import warnings

    from mlflow.models import infer_signature

    model = penguins_model(kind)
    X = penguins()[0] if kind == "pipeline" else penguins_categorical()
    path = directory / (name or f"penguins_mlflow_{kind}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow warns about its environment (pip, git) while saving
        signature = infer_signature(X, model.predict(X))
        if kind == "xgboost":
            import mlflow.xgboost

            mlflow.xgboost.save_model(model, path, signature=signature, **options)
        else:
            import mlflow.sklearn

            options.setdefault("serialization_format", "cloudpickle")
            mlflow.sklearn.save_model(model, path, signature=signature, **options)
    return path


def write_iris_set(directory: Path) -> Path:
    """The demo set: an sklearn classifier served as default and an XGBoost one, with labels."""
    directory.mkdir(parents=True, exist_ok=True)
    common = {"labels": IRIS_LABELS, "feature_names": IRIS_FEATURES}
    write_sklearn_classifier(directory, **common)
    write_xgboost_classifier(directory, **common)
    return directory


def record(name: str = "m", file: str | None = None, sha256: str = "a" * 64, **changes: Any) -> ModelRecord:
    """A desired-state record of ``name`` (no file behind it); ``changes`` replace any other field."""
    base = ModelRecord(
        name=name,
        file=file or f"{name}.joblib",
        model_type="sklearn",
        sha256=sha256,
        size_bytes=123,
        metadata={"labels": ["a", "b"], "training": {"python": "3.11.7"}, "nested": {"x": [1, 2]}},
        origin="api",
        registered_at="2026-01-01T00:00:00.000Z",
    )
    return replace(base, **changes)
