"""Models fitted on the penguins DataFrame (strings, missing values) over real gunicorn, in every input format.

Three models a data scientist would train on palmerpenguins: a Pipeline
(ColumnTransformer: one-hot strings, imputed and scaled numbers; then
LogisticRegression), XGBoost with native categorical features, and a
HistGradientBoostingClassifier with native categories and NaN; and the XGBoost one
as an MLflow model directory. Each answers the whole data set, NaN rows included,
exactly as the in-process model does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.factories import (
    PENGUIN,
    PENGUIN_LABELS,
    penguin_records,
    penguins,
    penguins_categorical,
    penguins_model,
    write_penguins_mlflow,
    write_penguins_models,
)
from tests.helpers import GunicornServer, assert_error

pytestmark = pytest.mark.integration

MODELS = {"pipeline": "penguins", "xgboost": "penguins_xgboost", "hgb": "penguins_hgb"}
#: Also served: the XGBoost model as an MLflow directory (read without MLflow), auto-loaded by its name.
MLFLOW = "penguins_mlflow_xgboost"
COLUMNS = list(PENGUIN)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("penguins")
    model_dir = root / "models"
    model_dir.mkdir()
    write_penguins_models(model_dir)
    write_penguins_mlflow(model_dir, "xgboost")
    config = {"models": {"model_directory": str(model_dir), "default_model": "penguins"}}
    with GunicornServer(root, config, workers=2) as srv:
        yield srv


def expected(kind: str) -> tuple[list[str], np.ndarray]:
    """The in-process model's labels and probabilities for every row, from the DataFrame it was fitted on."""
    model = penguins_model(kind)
    X = penguins()[0] if kind == "pipeline" else penguins_categorical()
    proba = model.predict_proba(X)
    labels = [PENGUIN_LABELS[i] for i in proba.argmax(axis=1)] if kind == "xgboost" else list(model.predict(X))
    return labels, proba


def batch_request(model: str, form: str) -> dict[str, Any]:
    """The whole data set as ``form`` carries it to /batch-predict (``requests`` keyword arguments)."""
    records = penguin_records()
    lists = [[row[c] for c in COLUMNS] for row in records]
    if form == "text/csv":
        text = penguins()[0].to_csv(index=False)  # missing values as empty cells
        params = {"model_name": model, "return_probabilities": "true"}
        return {"data": text, "params": params, "headers": {"Content-Type": "text/csv"}}
    payload = {
        "features-objects": {"features": records},
        "features-lists": {"features": lists},
        "instances": {"instances": records},
        "dataframe_records": {"dataframe_records": records},
        "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": lists}},
    }[form]
    return {"json": {**payload, "model_name": model, "return_probabilities": True}}


FORMS = ["features-objects", "features-lists", "instances", "dataframe_records", "dataframe_split", "text/csv"]


@pytest.mark.parametrize("kind", [*MODELS, "mlflow"])
@pytest.mark.parametrize("form", FORMS)
def test_the_whole_data_set_is_answered_as_in_process(server, kind, form):
    labels, proba = expected("xgboost" if kind == "mlflow" else kind)
    if kind == "mlflow":  # no sidecar: the labels are the class values XGBoost was fitted on
        labels = [str(PENGUIN_LABELS.index(label)) for label in labels]
    response = server.post("/api/v1/batch-predict", **batch_request(MODELS.get(kind, MLFLOW), form))
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["prediction_label"] for p in predictions] == labels
    assert np.array_equal(np.array([p["probabilities"] for p in predictions]), proba)


@pytest.mark.parametrize("kind", list(MODELS))
def test_single_rows_with_missing_values(server, kind):
    labels, _ = expected(kind)
    model = penguins_model(kind)
    X = penguins()[0] if kind == "pipeline" else penguins_categorical()
    records = penguin_records()
    with_nulls = [i for i, row in enumerate(records) if None in row.values()]
    assert len(with_nulls) >= 9  # the data set's NaN rows: every model must take them
    for i in with_nulls:
        response = server.post(f"/api/v1/predict/{MODELS[kind]}", json={"features": records[i]})
        assert response.status_code == 200, response.text
        assert response.json()["prediction_label"] == labels[i]
        # One row alone, as the in-process model computes it (a batch's arithmetic may differ in the last bit).
        assert response.json()["probabilities"] == model.predict_proba(X.iloc[[i]])[0].tolist()


def test_the_signature_says_what_each_model_takes(server):
    columns = {
        kind: {c["name"]: c for c in server.get(f"/api/v1/models/{name}/info").json()["signature"]["columns"]}
        for kind, name in MODELS.items()
    }
    assert [list(c) for c in columns.values()] == [COLUMNS] * 3
    pipeline, xgboost, hgb = columns["pipeline"], columns["xgboost"], columns["hgb"]
    # One-hot encoder (handle_unknown="error") fitted on islands without NaN, sexes with NaN.
    assert pipeline["island"] == {
        "name": "island",
        "type": "string",
        "categories": ["Biscoe", "Dream", "Torgersen"],
        "closed": True,
        "nullable": False,
    }
    assert pipeline["sex"]["nullable"] and pipeline["sex"]["closed"]
    assert pipeline["body_mass_g"] == {"name": "body_mass_g", "type": "number", "nullable": True}  # imputed
    # XGBoost keeps its categories and refuses others; it takes NaN everywhere.
    assert xgboost["sex"]["categories"] == ["female", "male"] and xgboost["sex"]["closed"]
    assert all(c["nullable"] for c in xgboost.values())
    # HistGradientBoosting treats an unknown category as missing: no closed set to show.
    assert hgb["island"] == {"name": "island", "type": "string", "nullable": True}


def test_the_xgboost_model_refuses_an_unknown_category_by_name(server):
    response = server.post("/api/v1/predict/penguins_xgboost", json={"features": {**PENGUIN, "island": "Atlantis"}})
    body = assert_error(response, 422, contains="Feature 'island' must be one of")
    assert "Atlantis" in body["message"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"features": PENGUIN}, id="features"),
        pytest.param({"features": list(PENGUIN.values())}, id="features-list"),
        pytest.param({"instances": [PENGUIN]}, id="instances"),
        pytest.param({"dataframe_records": [PENGUIN]}, id="dataframe_records"),
        pytest.param({"dataframe_split": {"columns": COLUMNS, "data": [list(PENGUIN.values())]}}, id="dataframe_split"),
    ],
)
def test_one_row_in_each_format_of_predict(server, body):
    response = server.post("/api/v1/predict/penguins", json=body)
    assert response.status_code == 200, response.text
    X = pd.DataFrame([PENGUIN], dtype=object).astype({c: float for c in COLUMNS[1:5]}).fillna(np.nan)
    assert response.json()["probabilities"] == penguins_model("pipeline").predict_proba(X)[0].tolist()


def test_the_pipeline_is_served_by_the_tabular_kernel(server):
    """The answers above come from the NumPy kernel (runtime.tabular_kernel is on by default), not pandas."""
    details = server.get("/api/v1/models/penguins/info").json()["details"]
    assert details["tabular_kernel"] == {"serves": True, "reason": None}
    assert details["kernel"] == "tabular+logistic-internals"
