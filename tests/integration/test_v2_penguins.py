"""Models that take a table (the penguins DataFrame: strings, missing values) over V2, against real gunicorn.

Triton's own client sends one ``[rows]`` input per column (BYTES strings as
NumPy object arrays, FP64 numbers), binary data on and off; the answers equal
the in-process model's and ``/api/v1``'s. tritonclient writes every BYTES
element as text (a missing string would arrive as ``"None"``), so the rows
with a missing string go as V2 JSON with ``null`` (and NaN numbers in binary).
The typed bad-input table runs here too.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import requests

from tests.bad_inputs_v2 import V2_TYPED_BAD_REQUESTS
from tests.factories import (
    PENGUIN_LABELS,
    PENGUIN_STRINGS,
    penguin_records,
    write_penguins_models,
)
from tests.helpers import GunicornServer
from tests.integration.test_penguins import COLUMNS, MODELS, expected

pytestmark = pytest.mark.integration
http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the test extra")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2-penguins")
    model_dir = root / "models"
    model_dir.mkdir()
    write_penguins_models(model_dir)
    with GunicornServer(root, {"models": {"model_directory": str(model_dir)}}, workers=2) as srv:
        yield srv


def v1_answer(server, model: str, records: list[dict[str, Any]]) -> tuple[list[Any], np.ndarray]:
    body = {"features": records, "model_name": model, "return_probabilities": True}
    reply = server.post("/api/v1/batch-predict", json=body)
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    return [p["prediction_label"] for p in predictions], np.asarray([p["probabilities"] for p in predictions])


def as_labels(kind: str, predicted: Any) -> list[str]:
    """V2's ``predict`` (the model's class values: text, or XGBoost's codes) as the species names."""
    values = [v.decode() if isinstance(v, bytes) else v for v in np.asarray(predicted).reshape(-1).tolist()]
    return [PENGUIN_LABELS[int(v)] for v in values] if kind == "xgboost" else values


def test_metadata_lists_the_columns(server, triton):
    meta = triton.get_model_metadata("penguins")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        (name, "BYTES" if name in PENGUIN_STRINGS else "FP64", [-1]) for name in COLUMNS
    ]
    island = meta["inputs"][0]["parameters"]
    assert island == {
        "content_type": "str",
        "categories": ["Biscoe", "Dream", "Torgersen"],
        "closed": True,
        "nullable": False,
    }
    assert meta["inputs"][1]["parameters"] == {"nullable": True}  # imputed by the Pipeline
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("predict", "BYTES", [-1, 1]),
        ("predict_proba", "FP64", [-1, 3]),
    ]


def column_inputs(records: list[dict[str, Any]], binary: bool) -> list[Any]:
    inputs = []
    for name in COLUMNS:
        strings = name in PENGUIN_STRINGS
        values = np.asarray([r[name] for r in records], dtype=object if strings else np.float64)
        tensor = http.InferInput(name, [len(records)], "BYTES" if strings else "FP64")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_rows_equal_the_model_and_api_v1(server, triton, kind, binary):
    records = penguin_records()
    complete = [i for i, row in enumerate(records) if not any(row[s] is None for s in PENGUIN_STRINGS)]
    rows = [records[i] for i in complete]
    assert any(None in row.values() for row in rows) or len(rows) > 300
    outputs = [http.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    result = triton.infer(MODELS[kind], column_inputs(rows, binary), outputs=outputs)
    proba = result.as_numpy("predict_proba")
    _, in_process = expected(kind)
    assert np.array_equal(proba, in_process[complete])
    predicted, v1_proba = v1_answer(server, MODELS[kind], rows)
    labels, v1_proba = v1_answer(server, MODELS[kind], rows)
    assert as_labels(kind, result.as_numpy("predict")) == labels == [expected(kind)[0][i] for i in complete]
    assert np.array_equal(proba, v1_proba)


def binary_request(records: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """The whole data set: numbers as binary FP64 (NaN for a missing one), strings as JSON with ``null``."""
    inputs, chunks = [], []
    for name in COLUMNS:
        values = [r[name] for r in records]
        if name in PENGUIN_STRINGS:
            inputs.append({"name": name, "shape": [len(values)], "datatype": "BYTES", "data": values})
            continue
        raw = np.asarray([np.nan if v is None else v for v in values], dtype="<f8").tobytes()
        inputs.append(
            {"name": name, "shape": [len(values)], "datatype": "FP64", "parameters": {"binary_data_size": len(raw)}}
        )
        chunks.append(raw)
    header = json.dumps({"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}).encode()
    return header + b"".join(chunks), {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("form", ["json-nulls", "binary-nan"])
def test_the_whole_data_set_with_missing_values(server, kind, form):
    records = penguin_records()
    assert sum(None in row.values() for row in records) >= 9
    if form == "json-nulls":
        inputs = [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": "BYTES" if name in PENGUIN_STRINGS else "FP64",
                "data": [r[name] for r in records],
            }
            for name in COLUMNS
        ]
        body = {"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
        response = requests.post(f"{server.url}/v2/models/{MODELS[kind]}/infer", json=body, timeout=60)
    else:
        data, headers = binary_request(records)
        response = requests.post(f"{server.url}/v2/models/{MODELS[kind]}/infer", data=data, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    _, in_process = expected(kind)
    # In the model's own type (XGBoost's float32): JSON carries its shortest text.
    proba = np.asarray(outputs["predict_proba"]["data"], dtype=in_process.dtype).reshape(-1, 3)
    assert np.array_equal(proba, in_process)
    labels, v1_proba = v1_answer(server, MODELS[kind], records)
    assert as_labels(kind, outputs["predict"]["data"]) == labels == expected(kind)[0]
    assert np.array_equal(proba, v1_proba.astype(in_process.dtype))


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "contains"),
    [case[1:] for case in V2_TYPED_BAD_REQUESTS],
    ids=[case[0] for case in V2_TYPED_BAD_REQUESTS],
)
def test_v2_typed_bad_input_over_http(server, method, path, body, headers, status, contains):
    response = requests.request(method, server.url + path, data=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and contains.lower() in response.json()["error"].lower()
    assert response.headers["X-Request-ID"]
