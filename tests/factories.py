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
