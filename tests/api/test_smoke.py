from tests.factories import KNOWN_ROWS
from tests.helpers import assert_error


def test_first_prediction_of_the_spec(client):
    response = client.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2], "model_name": "default"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["prediction"] == 0
    assert body["prediction_label"] == "setosa"
    assert body["model_name"] == "default"
    assert len(body["probabilities"]) == 3
    assert body["timestamp"].endswith("Z")


def test_invalid_input_of_the_spec(client):
    assert_error(client.post("/api/v1/predict", json={"features": "invalid"}), 422)


def test_known_rows(client):
    for label, row in KNOWN_ROWS.items():
        assert (
            client.post("/api/v1/predict/iris_xgboost", json={"features": row}).get_json()["prediction_label"] == label
        )
