"""The demo models ``make serve`` needs, trained on scikit-learn's bundled iris data and on palmerpenguins.

Nothing here runs while serving: it is the ``create-demo-models`` command's
work. Each model gets a sidecar with its sha256 and the library versions it was
trained with; the iris models also with their labels and feature names (the
penguins pipeline knows its own columns and classes).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from app.model_files import sha256_of, sidecar_path

LABELS = ["setosa", "versicolor", "virginica"]
FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class DemoModel:
    filename: str
    description: str
    model_type: str
    build: Callable[[Any, Any, Path], None]
    #: The spec's "load a model" examples load these by hand, so they are not auto-loaded.
    auto_load: bool = True
    #: What it is trained on: (features, target), and whether the sidecar names iris's labels and features.
    data: Callable[[], tuple[Any, Any]] | None = None


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


def penguins_data() -> tuple[Any, Any]:
    """The palmerpenguins table as a data scientist fits it: strings and missing values kept."""
    from palmerpenguins import load_penguins

    data = load_penguins()
    columns = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
    return data[columns].astype({"island": object, "sex": object}), data["species"].astype(object)


def penguins_pipeline(X: Any, y: Any, path: Path) -> None:
    """One-hot strings, imputed and scaled numbers, then LogisticRegression: the commonest tabular model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [c for c in X.columns if c not in ("island", "sex")]
    columns = ColumnTransformer(
        [
            ("strings", OneHotEncoder(), ["island", "sex"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
        ]
    )
    _save_joblib(Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=1000))]).fit(X, y), path)


def _save_joblib(estimator: Any, path: Path) -> None:
    import joblib

    joblib.dump(estimator, path)


def _logistic_regression(X: Any, y: Any, path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    _save_joblib(LogisticRegression(max_iter=1000).fit(X, y), path)


def _random_forest(X: Any, y: Any, path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    _save_joblib(RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1).fit(X, y), path)


def _decision_tree(X: Any, y: Any, path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    _save_joblib(DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y), path)


def _xgboost(X: Any, y: Any, path: Path) -> None:
    import xgboost as xgb

    model = xgb.XGBClassifier(n_estimators=50, max_depth=3, learning_rate=0.3, n_jobs=1, random_state=0)
    model.fit(X, y)
    model.save_model(path)


DEMO_MODELS = (
    DemoModel("iris_classifier.joblib", "Iris LogisticRegression; the default model", "sklearn", _logistic_regression),
    DemoModel("iris_xgboost.json", "Iris XGBoost classifier (50 trees), native JSON format", "xgboost", _xgboost),
    DemoModel(
        "production_model.joblib",
        "Iris LogisticRegression; the model of the spec's async batch example",
        "sklearn",
        _logistic_regression,
    ),
    DemoModel(
        "custom_model.pkl",
        "Iris RandomForest (50 trees) for the spec's load example",
        "sklearn",
        _random_forest,
        auto_load=False,
    ),
    DemoModel(
        "new_model.pkl",
        "Iris DecisionTree for the spec's model-management example",
        "sklearn",
        _decision_tree,
        auto_load=False,
    ),
    DemoModel(
        "penguins.joblib",
        "Penguin species from a DataFrame with strings and missing values: a scikit-learn Pipeline "
        "(ColumnTransformer, LogisticRegression)",
        "sklearn",
        penguins_pipeline,
        data=penguins_data,
    ),
)


def training_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("scikit-learn", "xgboost", "numpy"):
        try:
            found[package] = version(package)
        except Exception:  # xgboost ships as xgboost-cpu too
            try:
                found[package] = version(f"{package}-cpu")
            except Exception:
                continue
    return found


def create_demo_models(directory: Path, force: bool = False) -> list[tuple[str, str]]:
    """Train and write the demo models that are missing; return (file, "created"/"kept") pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    datasets: dict[Any, tuple[Any, Any]] = {}
    report = []
    for demo in DEMO_MODELS:
        path = directory / demo.filename
        if path.exists() and sidecar_path(path).exists() and not force:
            report.append((demo.filename, "kept"))
            continue
        load = demo.data or _iris
        if load not in datasets:
            datasets[load] = load()
        demo.build(*datasets[load], path)
        metadata: dict[str, Any] = {
            "name": path.stem,
            "version": "1",
            "description": demo.description,
            "model_type": demo.model_type,
        }
        if demo.data is None:
            metadata.update(labels=LABELS, feature_names=FEATURE_NAMES)
        metadata.update(sha256=sha256_of(path), training=training_versions())
        if not demo.auto_load:
            metadata["auto_load"] = False
        sidecar_path(path).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        report.append((demo.filename, "created"))
    return report


#: The spec's async example scores this file (``data_path: data/batch/large_dataset.csv``).
DEMO_DATASET = Path("batch") / "large_dataset.csv"
DEMO_DATASET_REPEATS = 100  # 15,000 rows: iris, 100 times over


def create_demo_data(data_directory: Path, force: bool = False) -> list[tuple[str, str]]:
    """Write the iris rows (with an ``id`` column) as the spec's batch file, if missing."""
    import csv

    path = data_directory / DEMO_DATASET
    if path.exists() and not force:
        return [(str(DEMO_DATASET), "kept")]
    path.parent.mkdir(parents=True, exist_ok=True)
    X, _ = _iris()
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *FEATURE_NAMES])
        for repeat in range(DEMO_DATASET_REPEATS):
            for i, row in enumerate(X):
                writer.writerow([f"iris-{repeat * len(X) + i + 1}", *(float(v) for v in row)])
    temp.replace(path)
    return [(str(DEMO_DATASET), "created")]
