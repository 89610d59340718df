"""Bad input gets a clear 4xx in the one documented error shape, and the next good request works."""

from __future__ import annotations

import pytest

from tests.bad_inputs import BAD_REQUESTS, ROW
from tests.factories import write_penguins_pipeline
from tests.helpers import assert_error


@pytest.fixture
def model_dir(model_dir):
    """The iris set and the penguins pipeline, which the table's typed cases ask."""
    write_penguins_pipeline(model_dir)
    return model_dir


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "contains"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_gets_clear_error(client, method, path, body, content_type, status, contains):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.open(path, method=method, data=body, headers=headers)
    assert_error(response, status, contains=contains or None)
    good = client.post("/api/v1/predict", json={"features": ROW})
    assert good.status_code == 200, good.get_json()


def test_body_over_max_request_size_is_413(make_app):
    client = make_app(api={"max_request_size": 2048}).test_client()
    body = '{"features": [' + ", ".join(["1.0"] * 1000) + "]}"
    assert len(body) > 2048
    assert_error(client.post("/api/v1/predict", data=body, content_type="application/json"), 413)
    assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200


def test_wrong_feature_count_names_the_expected_count(client):
    body = assert_error(client.post("/api/v1/predict", json={"features": [1.0, 2.0]}), 422)
    assert body["message"] == "expected 4 features, got 2."
    assert body["errors"] == {"json": {"features": ["expected 4 features, got 2."]}}


def test_validation_message_says_which_field(client):
    body = assert_error(client.post("/api/v1/predict", json={"features": [1, True, 3, 4]}), 422)
    assert body["message"] == "Feature 'sepal_width' must be a number, got boolean."
    assert body["errors"] == {"json": {"features": [body["message"]]}}
    body = assert_error(client.post("/api/v1/predict", json={"features": [1, [2], 3, 4]}), 422)
    assert body["message"].startswith("json.features: Feature 1 must be a number, string, boolean or null")


def test_unhandled_exception_is_a_json_500_without_traceback(client, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("app.inference.run_model", explode)
    body = assert_error(client.post("/api/v1/predict", json={"features": ROW}), 500)
    assert "secret internals" not in str(body)


def test_client_request_id_is_echoed_when_well_formed(client):
    response = client.post("/api/v1/predict", json={"features": "bad"}, headers={"X-Request-ID": "req-123"})
    assert response.headers["X-Request-ID"] == "req-123"
    assert response.get_json()["request_id"] == "req-123"
    odd = client.get("/api/v1/models", headers={"X-Request-ID": "bad id with spaces\u00e9"})
    assert odd.headers["X-Request-ID"] != "bad id with spaces\u00e9"
    assert len(odd.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("method", ["GET", "TRACE", "PUT"])
def test_a_wrong_method_is_405_with_the_allowed_ones(client, method):
    response = client.open("/api/v1/predict", method=method)
    assert_error(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


def test_the_reserved_model_names_are_their_own_resources(client):
    """``/models/load`` is the load endpoint: DELETE there is no deletion of a model called "load"."""
    response = client.delete("/api/v1/models/load")
    assert_error(response, 405)
    assert "DELETE" not in response.headers["Allow"]
    assert_error(client.post("/api/v1/models/load", json={"model_name": "load", "model_path": "x.pkl"}), 422)
