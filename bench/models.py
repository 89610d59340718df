"""The benchmark's models: iris LogisticRegression, RandomForest(100) and XGBoost(100); the penguins Pipeline.

Written once into a model directory that modelserve reads (with sidecars) and
MLServer reads too (its ``model-settings.json`` point at the same files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.demo_models import FEATURE_NAMES, LABELS, penguins_data, penguins_pipeline, training_versions

#: name -> (file, MLServer runtime)
MODELS = {
    "iris_lr": ("iris_lr.joblib", "mlserver_sklearn.SKLearnModel"),
    "iris_rf": ("iris_rf.joblib", "mlserver_sklearn.SKLearnModel"),
    "iris_xgb": ("iris_xgb.json", "mlserver_xgboost.XGBoostModel"),
    "penguins": ("penguins.joblib", "mlserver_sklearn.SKLearnModel"),
}
#: The models with a 1,000-row batch cell beside their single rows.
BATCHED = ("iris_lr", "penguins")
#: The penguins Pipeline's columns, in its training order; the strings are sent as MLServer ``str`` columns.
PENGUIN_COLUMNS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
PENGUIN_STRINGS = ("island", "sex")
ROW = [5.1, 3.5, 1.4, 0.2]


def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


#: Served through Treelite by modelserve (their sidecars say ``"compiled_trees": true``).
COMPILED = ("iris_rf", "iris_xgb")


def train(model_dir: Path, compiled: tuple[str, ...] = COMPILED) -> dict[str, Path]:
    """Train the three models into ``model_dir``; return name -> file."""
    import joblib
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    model_dir.mkdir(parents=True, exist_ok=True)
    X, y = iris()
    paths = {name: model_dir / file for name, (file, _) in MODELS.items() if name != "penguins"}
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), paths["iris_lr"])
    joblib.dump(RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y), paths["iris_rf"])
    xgb.XGBClassifier(n_estimators=100, max_depth=3, learning_rate=0.3, n_jobs=1, random_state=0).fit(X, y).save_model(
        paths["iris_xgb"]
    )
    for name, path in paths.items():
        meta = {
            "name": name,
            "labels": LABELS,
            "feature_names": FEATURE_NAMES,
            "training": training_versions(),
        }
        if name in compiled:
            meta["compiled_trees"] = True
        path.with_name(path.stem + ".meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return paths


def train_penguins(model_dir: Path) -> Path:
    """The demo's penguins Pipeline (ColumnTransformer, LogisticRegression), with its sidecar's provenance.

    Written after the footprint is measured, which keeps to the three iris models.
    """
    path = model_dir / MODELS["penguins"][0]
    penguins_pipeline(*penguins_data(), path)
    meta = {"name": "penguins", "training": training_versions()}
    path.with_name(path.stem + ".meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


def penguin_rows(count: int) -> list[dict[str, Any]]:
    """``count`` complete penguins rows as objects (the data set's rows without a missing value, repeated)."""
    X, _ = penguins_data()
    records = X.dropna().to_dict("records")
    return [records[i % len(records)] for i in range(count)]


def mlserver_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as MLServer's V2 ``pd`` codec takes a DataFrame: one input per column, strings as ``str``."""
    inputs = []
    for name in PENGUIN_COLUMNS:
        values = [row[name] for row in rows]
        column: dict[str, Any] = {"name": name, "shape": [len(rows)], "data": values}
        if name in PENGUIN_STRINGS:
            column.update(datatype="BYTES", parameters={"content_type": "str"})
        else:
            column["datatype"] = "FP64"
        inputs.append(column)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def write_mlserver_repository(root: Path, paths: dict[str, Path]) -> None:
    """One folder per model with its ``model-settings.json``, pointing at the same files."""
    for name, path in paths.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        runtime = "mlserver_xgboost.XGBoostModel" if path.suffix == ".json" else "mlserver_sklearn.SKLearnModel"
        settings = {"name": name, "implementation": runtime, "parameters": {"uri": str(path.resolve())}}
        (folder / "model-settings.json").write_text(json.dumps(settings), encoding="utf-8")


def batch_rows(count: int = 1000) -> list[list[float]]:
    """``count`` iris rows (the 150 rows, repeated)."""
    X, _ = iris()
    return [[float(v) for v in X[i % len(X)]] for i in range(count)]
