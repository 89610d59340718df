"""The model signature: from the model, from the sidecar, and what the model accepts, probed at load."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidFeatures
from app.features import Features
from app.model_input import Columns, model_input
from app.services import services
from tests.factories import (
    IRIS_FEATURES,
    PENGUIN,
    _xgb_classifier,
    penguins_categorical,
    penguins_model,
    write_penguins_hgb,
)
from tests.helpers import assert_error


def test_a_matrix_model_that_handles_nan_takes_null_and_says_so(client):
    columns = client.get("/api/v1/models/iris_xgboost/info").get_json()["signature"]["columns"]
    assert [c["name"] for c in columns] == IRIS_FEATURES and all(c["nullable"] for c in columns)
    answer = client.post("/api/v1/predict/iris_xgboost", json={"features": [None, 3.5, 1.4, 0.2]})
    assert answer.status_code == 200, answer.get_json()
    expected = _xgb_classifier().predict_proba(np.array([[np.nan, 3.5, 1.4, 0.2]]))[0]
    np.testing.assert_allclose(answer.get_json()["probabilities"], expected, rtol=0, atol=1e-6)
    # LogisticRegression cannot take NaN: its signature says so, and null is refused naming the feature.
    info = client.get("/api/v1/models/iris_classifier/info").get_json()["signature"]
    assert info["input"] == "array" and not any(c["nullable"] for c in info["columns"])
    refused = client.post("/api/v1/predict", json={"features": [None, 3.5, 1.4, 0.2]})
    assert_error(refused, 422, contains="Feature 'sepal_length' must be a number, got null")


def test_the_sidecar_signature_overrides_the_model_column_by_column(make_app, model_dir):
    signature = [
        {"name": "island", "type": "string", "categories": ["Biscoe", "Dream", "Torgersen"]},
        {"name": "sex", "type": "string", "nullable": False},
    ]
    write_penguins_hgb(model_dir, signature=signature)
    client = make_app().test_client()
    info = client.get("/api/v1/models/penguins_hgb/info").get_json()["signature"]
    assert info["source"] == "metadata" and len(info["columns"]) == 6  # the other four as the model says
    island, sex = info["columns"][0], info["columns"][5]
    # HistGradientBoosting takes an unknown category as missing: the declared set is not closed.
    assert island == {
        "name": "island",
        "type": "string",
        "categories": ["Biscoe", "Dream", "Torgersen"],
        "closed": False,
        "nullable": True,
    }
    assert sex == {"name": "sex", "type": "string", "nullable": False}  # declared, not probed


def test_the_model_gets_its_training_dtypes(client, model_dir):
    write_penguins_hgb(model_dir)
    assert (
        client.post("/api/v1/models/load", json={"model_name": "h", "model_path": "penguins_hgb.joblib"}).status_code
        == 200
    )
    answer = client.post("/api/v1/predict/h", json={"features": PENGUIN})
    assert answer.status_code == 200, answer.get_json()
    X = penguins_categorical().iloc[[0]].copy()
    X["sex"] = X["sex"].cat.set_categories(X["sex"].cat.categories)  # the same categories, the value missing
    X.loc[X.index[0], "sex"] = np.nan
    assert answer.get_json()["probabilities"] == penguins_model("hgb").predict_proba(X)[0].tolist()


def test_columns_are_the_same_input_as_named_rows(app, model_dir):
    """A table sent column by column (V2) is checked and typed exactly as the same rows sent row by row."""
    write_penguins_hgb(model_dir)
    rows = [PENGUIN, {**PENGUIN, "island": "Dream", "body_mass_g": None, "sex": "female"}]
    with app.app_context():
        registry = services().registry
        registry.load("h", "penguins_hgb.joblib", None)
        served = registry.get("h")
        names = list(reversed(PENGUIN))  # in another order than the model's
        by_columns = model_input(served, Columns({n: [r[n] for r in rows] for n in names}, len(rows)))
        by_rows = model_input(served, Features(rows=tuple(rows)))
        assert list(by_columns.columns) == list(PENGUIN)
        assert by_columns.equals(by_rows) and (by_columns.dtypes == by_rows.dtypes).all()
        # A column the model does not have goes the rows' way, where it is named.
        extra = Columns({**{n: [r[n] for r in rows] for n in names}, "beak": [1.0, 2.0]}, len(rows))
        with pytest.raises(InvalidFeatures, match="beak"):
            model_input(served, extra)
