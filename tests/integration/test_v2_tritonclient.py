"""The Open Inference Protocol as Triton's own client speaks it, against real gunicorn with several workers.

``tritonclient.http.InferenceServerClient``, with binary tensor data on and off:
liveness, readiness, server and model metadata, inference on the iris sklearn
and XGBoost models equal to ``/api/v1/batch-predict``'s answers for the same
rows; API keys and roles as on ``/api/v1``; and the V2 bad-input table over HTTP.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from app.security.auth import new_api_key
from tests.bad_inputs_v2 import ROWS, V2_BAD_REQUESTS
from tests.factories import IRIS_FEATURES, KNOWN_ROWS, iris, write_iris_set
from tests.helpers import GunicornServer

pytestmark = pytest.mark.integration
http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the test extra")
from tritonclient.utils import InferenceServerException  # noqa: E402

WORKERS = 2
MODELS = ("iris_classifier", "iris_xgboost")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    predict_key, predict_sha = new_api_key()
    admin_key, admin_sha = new_api_key()
    config = {
        "models": {"model_directory": str(write_iris_set(root / "models"))},
        "security": {
            "api_keys": [
                {"name": "scorer", "sha256": predict_sha, "roles": ["predict"]},
                {"name": "ops", "sha256": admin_sha, "roles": ["admin"]},
            ],
            "allow_unverified_pickles": True,
        },
    }
    with GunicornServer(root, config, workers=WORKERS) as srv:
        srv.predict_headers = {"X-API-Key": predict_key}
        srv.admin_headers = {"X-API-Key": admin_key}
        yield srv


def test_live_ready_and_server_metadata(server, triton):
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_server_metadata()
    assert meta["name"] == "modelserve" and {"binary_tensor_data", "model_repository"} <= set(meta["extensions"])


@pytest.mark.parametrize("model", MODELS)
def test_model_metadata_and_ready(server, triton, model):
    headers = dict(server.predict_headers)  # tritonclient adds its own headers to the dict it is given
    assert triton.is_model_ready(model, headers=headers) and triton.is_model_ready(model, "1", headers=headers)
    meta = triton.get_model_metadata(model, headers=headers)
    assert meta["name"] == model and meta["versions"] == ["1"]
    assert meta["inputs"][0]["shape"] == [-1, 4] and meta["inputs"][0]["parameters"]["feature_names"] == IRIS_FEATURES
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("predict", "INT64", [-1, 1]),
        ("predict_proba", "FP32" if model == "iris_xgboost" else "FP64", [-1, 3]),  # the model's own type
    ]
    assert not triton.is_model_ready("nope", headers=headers)


def v1_answer(server, model: str, rows: list[list[float]]) -> tuple[list[int], np.ndarray]:
    body = {"features": rows, "model_name": model, "return_probabilities": True}
    reply = server.post("/api/v1/batch-predict", json=body, headers=dict(server.predict_headers))
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    return [p["prediction"] for p in predictions], np.asarray([p["probabilities"] for p in predictions])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_infer_equals_api_v1(server, triton, model, binary, datatype):
    X, _ = iris()
    rows = X[::5].astype(np.float32 if datatype == "FP32" else np.float64)
    tensor = http.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [http.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    result = triton.infer(model, [tensor], outputs=outputs, request_id="r-1", headers=dict(server.predict_headers))
    assert result.get_response()["id"] == "r-1"
    predicted, proba = v1_answer(server, model, rows.astype(np.float64).tolist())
    assert result.as_numpy("predict").reshape(-1).tolist() == predicted
    assert np.allclose(result.as_numpy("predict_proba"), proba, rtol=0, atol=1e-9)


def test_infer_with_defaults_is_binary_predict(server, triton):
    """tritonclient asks for every output in binary when it names none: the server's default, predict."""
    rows = np.asarray(list(KNOWN_ROWS.values()))
    tensor = http.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    result = triton.infer("iris_classifier", [tensor], headers=dict(server.predict_headers))
    assert result.get_output("predict")["parameters"]["binary_data_size"] == 8 * len(rows)
    assert result.as_numpy("predict").reshape(-1).tolist() == [0, 1, 2]


def test_named_columns_make_a_table(server, triton):
    rows = np.asarray(ROWS)
    inputs = []
    for index, name in enumerate(IRIS_FEATURES):
        column = http.InferInput(name, [len(rows)], "FP64")
        column.set_data_from_numpy(rows[:, index], binary_data=index % 2 == 0)
        inputs.append(column)
    result = triton.infer("iris_xgboost", inputs, headers=dict(server.predict_headers))
    assert result.as_numpy("predict").reshape(-1).tolist() == v1_answer(server, "iris_xgboost", ROWS)[0]


def test_errors_reach_the_client_as_the_protocol_says(server, triton):
    tensor = http.InferInput("input-0", [1, 3], "FP64")
    tensor.set_data_from_numpy(np.ones((1, 3)))
    with pytest.raises(InferenceServerException, match="expected 4 features") as raised:
        triton.infer("iris_classifier", [tensor], headers=dict(server.predict_headers))
    assert raised.value.status() == "400"
    with pytest.raises(InferenceServerException, match="credentials"):
        triton.get_model_metadata("iris_classifier")


def test_roles_and_the_repository_extension(server, triton):
    with pytest.raises(InferenceServerException, match="admin"):
        triton.get_model_repository_index(headers=dict(server.predict_headers))
    index = triton.get_model_repository_index(headers=dict(server.admin_headers))
    assert {(m["name"], m["state"]) for m in index} == {(m, "READY") for m in MODELS}
    triton.unload_model("iris_xgboost", headers=dict(server.admin_headers))
    # Every worker follows the shared registry: on fresh connections, none serves it any more.
    for _ in range(2 * WORKERS):
        assert (
            requests.get(f"{server.url}/v2/models/iris_xgboost/ready", headers=dict(server.predict_headers)).status_code
            == 404
        )
    triton.load_model("iris_xgboost", headers=dict(server.admin_headers))
    for _ in range(2 * WORKERS):
        assert (
            requests.get(f"{server.url}/v2/models/iris_xgboost/ready", headers=dict(server.predict_headers)).status_code
            == 200
        )


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "contains"),
    [case[1:] for case in V2_BAD_REQUESTS],
    ids=[case[0] for case in V2_BAD_REQUESTS],
)
def test_v2_bad_input_over_http(server, method, path, body, headers, status, contains):
    headers = {**headers, **server.admin_headers}
    response = requests.request(method, server.url + path, data=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error"} and contains.lower() in response.json()["error"].lower()
    assert response.headers["X-Request-ID"]
