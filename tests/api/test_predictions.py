"""The prediction endpoints, shaped as the spec's examples."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import IRIS_FEATURES, KNOWN_ROWS, write_sklearn_regressor

ROW = KNOWN_ROWS["setosa"]


def test_single_prediction_has_the_spec_fields(client):
    body = client.post("/api/v1/predict", json={"features": ROW, "return_probabilities": True}).get_json()
    assert {"prediction", "prediction_label", "probabilities", "model_name", "prediction_time", "timestamp"} <= set(
        body
    )
    assert body["model_name"] == "default"
    assert body["prediction"] == 0 and body["prediction_label"] == "setosa"
    assert sum(body["probabilities"]) == pytest.approx(1.0)
    assert max(body["probabilities"]) == body["probabilities"][0]
    assert 0 < body["prediction_time"] < 5


def test_probabilities_can_be_left_out(client):
    body = client.post("/api/v1/predict", json={"features": ROW, "return_probabilities": False}).get_json()
    assert "probabilities" not in body and body["prediction_label"] == "setosa"


@pytest.mark.parametrize("model", ["iris_classifier", "iris_xgboost"])
def test_every_known_row_gets_its_class(client, model):
    for label, row in KNOWN_ROWS.items():
        body = client.post(f"/api/v1/predict/{model}", json={"features": row}).get_json()
        assert body["prediction_label"] == label, body
        assert body["model_name"] == model


def test_named_features_are_put_in_model_order(client):
    named = dict(zip(reversed(IRIS_FEATURES), reversed(KNOWN_ROWS["virginica"]), strict=True))
    body = client.post("/api/v1/predict/iris_classifier", json={"features": named}).get_json()
    assert body["prediction_label"] == "virginica"


def test_integers_are_numbers(client):
    assert client.post("/api/v1/predict", json={"features": [5, 3, 1, 0]}).get_json()["prediction_label"] == "setosa"


def test_batch_prediction_of_the_spec(client):
    rows = [KNOWN_ROWS["setosa"], KNOWN_ROWS["virginica"], [4.9, 3.0, 1.4, 0.2]]
    body = client.post("/api/v1/batch-predict", json={"features": rows, "model_name": "iris_classifier"}).get_json()
    assert body["count"] == 3 and body["model_name"] == "iris_classifier"
    assert [p["prediction_label"] for p in body["predictions"]] == ["setosa", "virginica", "setosa"]
    for pred in body["predictions"]:
        assert 0.5 < pred["confidence"] <= 1.0
        assert "probabilities" not in pred
    assert body["prediction_time"] > 0


def test_batch_probabilities_when_asked(client):
    body = client.post("/api/v1/batch-predict", json={"features": [ROW], "return_probabilities": True}).get_json()
    pred = body["predictions"][0]
    assert pred["confidence"] == max(pred["probabilities"])


def test_batch_of_1000_rows(client):
    from tests.factories import iris

    X, _ = iris()
    rows = np.resize(X, (1000, 4)).tolist()
    body = client.post("/api/v1/batch-predict", json={"features": rows}).get_json()
    assert body["count"] == 1000


def test_regressor_returns_a_number_without_label(client, model_dir):
    write_sklearn_regressor(model_dir)
    assert (
        client.post("/api/v1/models/load", json={"model_name": "petal", "model_path": "petal_width.joblib"}).status_code
        == 200
    )
    body = client.post("/api/v1/predict/petal", json={"features": [5.1, 3.5, 1.4]}).get_json()
    assert isinstance(body["prediction"], float) and 0 < body["prediction"] < 1
    assert "prediction_label" not in body or body["prediction_label"] is None
    assert "probabilities" not in body
    batch = client.post("/api/v1/batch-predict", json={"features": [[5.1, 3.5, 1.4]], "model_name": "petal"}).get_json()
    assert batch["predictions"][0]["confidence"] is None


def test_labels_come_from_classes_without_metadata(make_app, model_dir):
    from tests.factories import write_sklearn_classifier

    write_sklearn_classifier(model_dir, name="bare")  # no sidecar
    client = make_app().test_client()
    body = client.post("/api/v1/predict/bare", json={"features": ROW}).get_json()
    assert body["prediction"] == 0 and body["prediction_label"] == "0"


def test_every_response_has_a_request_id_and_nosniff(client):
    response = client.post("/api/v1/predict", json={"features": ROW})
    assert len(response.headers["X-Request-ID"]) == 32
    assert response.headers["X-Content-Type-Options"] == "nosniff"
