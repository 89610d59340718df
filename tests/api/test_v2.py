"""The Open Inference Protocol (V2) REST endpoints, in process: metadata, readiness, inference, errors."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests.api.test_metrics import samples, value
from tests.api.test_security import ADMIN_KEY, KEYS, PREDICT_KEY
from tests.bad_inputs_v2 import ROWS, V2_BAD_REQUESTS, tensor
from tests.factories import IRIS_FEATURES, iris


def infer(client, model="iris_classifier", **body):
    return client.post(f"/v2/models/{model}/infer", json=body)


def v2_error(response, status, contains=""):
    """The protocol's error body: ``{"error": "..."}`` and nothing else, with the request id in a header."""
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert set(body) == {"error"}, body
    assert contains.lower() in body["error"].lower(), body
    assert response.headers["X-Request-ID"]
    return body["error"]


def test_server_metadata_live_and_ready(client):
    meta = client.get("/v2").get_json()
    assert meta["name"] == "modelserve" and "binary_tensor_data" in meta["extensions"]
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}


def test_model_metadata_from_the_model(client):
    meta = client.get("/v2/models/iris_classifier").get_json()
    assert meta["name"] == "iris_classifier" and meta["versions"] == ["1"] and meta["platform"] == "sklearn"
    assert meta["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": [-1, 4], "parameters": {"feature_names": IRIS_FEATURES}}
    ]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert client.get("/v2/models/iris_classifier/versions/1").get_json() == meta
    assert client.get("/v2/models/iris_xgboost/ready").get_json()["ready"] is True
    assert client.get("/v2/models/iris_classifier/versions/1/ready").status_code == 200


def test_infer_matches_api_v1_and_echoes_the_id(client):
    v1 = client.post(
        "/api/v1/batch-predict", json={"features": ROWS, "model_name": "iris_xgboost", "return_probabilities": True}
    ).get_json()
    response = infer(
        client,
        "iris_xgboost",
        id="req-7",
        inputs=[tensor(ROWS)],
        outputs=[{"name": "predict"}, {"name": "predict_proba"}],
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == "req-7" and body["model_name"] == "iris_xgboost" and body["model_version"] == "1"
    predict, proba = body["outputs"]
    assert predict == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [3, 1],
        "data": [p["prediction"] for p in v1["predictions"]],
    }
    assert proba["shape"] == [3, 3] and proba["datatype"] == "FP32"  # XGBoost's own type, as MLServer sends it
    assert np.allclose(np.reshape(proba["data"], (3, 3)), [p["probabilities"] for p in v1["predictions"]])


def test_flat_data_fp32_and_parameters_ask_for_probabilities(client):
    flat = [v for row in ROWS for v in row]
    body = infer(
        client, inputs=[tensor(flat, [3, 4], datatype="FP32")], parameters={"return_probabilities": True}
    ).get_json()
    assert [o["name"] for o in body["outputs"]] == ["predict", "predict_proba"]
    assert "id" not in body


def test_named_columns_make_a_table_in_any_order(client):
    columns = list(zip(*ROWS, strict=True))
    inputs = [tensor(list(columns[i]), [3], name=IRIS_FEATURES[i]) for i in (3, 1, 0, 2)]
    body = infer(client, inputs=inputs).get_json()
    matrix = infer(client, inputs=[tensor(ROWS)]).get_json()
    assert body["outputs"] == matrix["outputs"]


def test_the_in_process_model_gives_the_same_answer(app, client):
    X, _ = iris()
    served = app.extensions["modelserve"].registry.get("iris_classifier")
    body = infer(client, inputs=[tensor(X.tolist())], outputs=[{"name": "predict_proba"}]).get_json()
    assert np.allclose(np.reshape(body["outputs"][0]["data"], (len(X), 3)), served.model.predict_proba(X), atol=1e-12)


def test_binary_inputs_and_outputs(client):
    array = np.asarray(ROWS, dtype=np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [3, 4], "datatype": "FP32", "parameters": {"binary_data_size": array.nbytes}}
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}],
        }
    )
    response = client.post(
        "/v2/models/iris_classifier/infer",
        data=header + array.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.data[:300]
    length = int(response.headers["Inference-Header-Content-Length"])
    head = orjson.loads(response.data[:length])
    predict, proba = head["outputs"]
    assert predict["parameters"] == {"binary_data_size": 24} and "data" not in predict
    assert np.frombuffer(response.data[length:], dtype="<i8").tolist() == [0, 2, 1]
    assert len(proba["data"]) == 9


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "contains"),
    [case[1:] for case in V2_BAD_REQUESTS],
    ids=[case[0] for case in V2_BAD_REQUESTS],
)
def test_bad_input_is_a_clear_4xx_in_the_protocols_shape(client, method, path, body, headers, status, contains):
    v2_error(client.open(path, method=method, data=body, headers=headers), status, contains)
    assert infer(client, inputs=[tensor(ROWS)]).status_code == 200


def test_api_v1_errors_keep_their_shape(client):
    body = client.post("/api/v1/predict", json={"features": [1.0]}).get_json()
    assert body["code"] == 422 and "request_id" in body


def test_repository_index_load_and_unload(client):
    index = client.post("/v2/repository/index", json={}).get_json()
    assert {"name": "iris_classifier", "version": "1", "state": "READY", "reason": ""} in index
    assert client.post("/v2/repository/models/iris_xgboost/unload").status_code == 200
    v2_error(client.get("/v2/models/iris_xgboost"), 404)
    assert client.post("/v2/repository/models/iris_xgboost/load").status_code == 200
    assert client.get("/v2/models/iris_xgboost").get_json()["name"] == "iris_xgboost"
    v2_error(client.post("/v2/repository/models/never_seen/load"), 404, "model_path")
    loaded = client.post(
        "/v2/repository/models/copy/load", json={"parameters": {"model_path": "iris_classifier.joblib"}}
    )
    assert loaded.status_code == 200, loaded.get_json()
    assert client.get("/v2/models/copy").get_json()["platform"] == "sklearn"


def test_same_rate_limit_group_and_429_in_the_protocols_shape(make_app):
    client = make_app(security={"rate_limits": {"predict": "2/minute"}}).test_client()
    assert client.post("/api/v1/predict", json={"features": ROWS[0]}).status_code == 200
    assert infer(client, inputs=[tensor(ROWS)]).status_code == 200
    response = infer(client, inputs=[tensor(ROWS)])  # the third in the predict group, /api/v1 and /v2 together
    assert "2 per 1 minute" in v2_error(response, 429)
    assert response.headers["X-RateLimit-Remaining"] == "0" and int(response.headers["Retry-After"]) > 0


def test_same_credentials_and_roles(make_app):
    client = make_app(security={"api_keys": KEYS}).test_client()
    assert "credentials" in v2_error(infer(client, inputs=[tensor(ROWS)]), 401)
    ok = client.post(
        "/v2/models/iris_classifier/infer", json={"inputs": [tensor(ROWS)]}, headers={"X-API-Key": PREDICT_KEY}
    )
    assert ok.status_code == 200
    v2_error(client.post("/v2/repository/index", headers={"X-API-Key": PREDICT_KEY}), 403, "admin")
    assert client.post("/v2/repository/index", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    assert client.get("/v2/health/ready").status_code == 200  # probes need no credentials


def test_requests_and_predictions_are_counted_under_the_v2_routes(client):
    infer(client, inputs=[tensor(ROWS)])
    found = samples(client)
    route = {"method": "POST", "endpoint": "/v2/models/{model_name}/infer"}
    assert value(found, "http_requests_total", **route, status="200") == 1
    assert value(found, "model_predictions_total", model_name="iris_classifier", status="success") >= 1


def test_not_ready_is_503_with_the_same_reasons_as_api_v1(make_app):
    client = make_app(health={"required_models": ["missing_model"]}).test_client()
    v1 = client.get("/api/v1/health/ready").get_json()
    assert v1["code"] == 503
    assert v2_error(client.get("/v2/health/ready"), 503) == v1["message"]
    assert client.get("/v2/health/live").status_code == 200
