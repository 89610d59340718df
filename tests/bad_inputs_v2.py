"""Every class of bad input the Open Inference Protocol routes must refuse with a clear 4xx, as one table.

The sibling of :mod:`tests.bad_inputs` for ``/v2``: run in process by
``tests/api/test_v2.py`` and over HTTP against real gunicorn by
``tests/integration/test_v2_tritonclient.py``. Each case: (id, method, path,
raw body or None, headers, status, text the ``{"error": "..."}`` must contain).
"""

from __future__ import annotations

import json

from tests.factories import IRIS_FEATURES

JSON = {"Content-Type": "application/json"}
INFER = "/v2/models/iris_classifier/infer"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8], [5.9, 3.0, 4.2, 1.5]]


def tensor(data, shape=None, name="input-0", datatype="FP64"):
    return {"name": name, "shape": shape if shape is not None else _shape(data), "datatype": datatype, "data": data}


def _shape(data):
    return [len(data), *_shape(data[0])] if type(data) is list and data else ([0] if data == [] else [])


def _infer(case: str, body: object, contains: str, status: int = 400) -> tuple:
    return (case, "POST", INFER, json.dumps(body), JSON, status, contains)


def _binary(case: str, header: dict, tail: bytes, contains: str, length: str | None = None) -> tuple:
    head = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": length or str(len(head))}
    return (case, "POST", INFER, head + tail, headers, 400, contains)


_COLUMN = [tensor([1.0], [1], name=n) for n in IRIS_FEATURES]
_BINARY_INPUT = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}

V2_BAD_REQUESTS = [
    # --- tensors ---
    _infer("unknown-datatype", {"inputs": [tensor(ROWS, datatype="FP128")]}, "unknown datatype"),
    _infer("shape-mismatch", {"inputs": [tensor(ROWS, [2, 4])]}, "needs 8 values"),
    _infer("short-row", {"inputs": [tensor([[1.0, 2.0], [3.0]], [2, 2])]}, "regular"),
    _infer("ragged", {"inputs": [tensor([[1.0, 2.0, 3.0], [4.0]], [2, 2])]}, "regular"),
    _infer("mixed-nesting", {"inputs": [tensor([[1.0, 2.0], 3.0, 4.0], [2, 2])]}, "regular"),
    _infer("string-in-fp", {"inputs": [tensor(["a", 1.0, 2.0, 3.0], [1, 4])]}, "must be numbers"),
    _infer("bool-in-fp", {"inputs": [tensor([True, 1.0, 2.0, 3.0], [1, 4])]}, "must be numbers"),
    _infer("null-in-fp", {"inputs": [tensor([None, 1.0, 2.0, 3.0], [1, 4])]}, "takes no nulls"),
    # Nested rows of numbers are converted in one call when the body's text holds no true or false:
    # anything else in them (a boolean where the text does hold one) is still named.
    _infer("bool-in-nested-fp", {"inputs": [tensor([[True, 1.0, 2.0, 3.0]])]}, "must be numbers"),
    _infer("string-in-nested-fp", {"inputs": [tensor([["a", 1.0, 2.0, 3.0]])]}, "must be numbers"),
    _infer("null-in-nested-fp", {"inputs": [tensor([[None, 1.0, 2.0, 3.0]])]}, "takes no nulls"),
    _infer("int-past-float64", {"inputs": [tensor([[10**400, 1, 2, 3]])]}, "range"),
    _infer("fp32-overflow-nested", {"inputs": [tensor([[1e300, 1, 2, 3]], datatype="FP32")]}, "finite"),
    _infer("null-in-int", {"inputs": [tensor([None, 1, 2, 3], [1, 4], datatype="INT64")]}, "null in INT64"),
    _infer("float-in-int", {"inputs": [tensor([1.5, 1, 2, 3], [1, 4], datatype="INT64")]}, "integers"),
    _infer("int-overflow", {"inputs": [tensor([300, 1, 2, 3], [1, 4], datatype="UINT8")]}, "range"),
    _infer("fp32-overflow", {"inputs": [tensor([1e300, 1, 2, 3], [1, 4], datatype="FP32")]}, "finite"),
    _infer("number-in-bool", {"inputs": [tensor([1, 0, 1, 0], [1, 4], datatype="BOOL")]}, "booleans"),
    _infer("data-not-list", {"inputs": [tensor(5.0, [1])]}, "must be a list"),
    _infer("no-data", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]}, "no 'data'"),
    _infer("negative-shape", {"inputs": [tensor(ROWS, [-3, 4])]}, "shape"),
    # 2**31 * 2**31 * 4 is 2**64: a count kept in 64 bits would wrap to 0 and match the empty data.
    _infer("shape-past-64-bits", {"inputs": [tensor([], [2**31, 2**31, 4])]}, "needs 18446744073709551616 values"),
    _infer("shape-not-list", {"inputs": [tensor(ROWS, "3x4")]}, "shape"),
    _infer("3-d", {"inputs": [tensor([[[1.0, 2.0, 3.0, 4.0]]])]}, "shape [1, 1, 4]"),
    _infer("no-rows", {"inputs": [tensor([], [0, 4])]}, "no rows"),
    _infer("no-rows-table", {"inputs": [tensor([], [0], name=n) for n in IRIS_FEATURES]}, "no rows"),
    _infer("bytes-for-numbers", {"inputs": [tensor(["a"], [1, 1], datatype="BYTES")]}, "bytes"),
    # --- the model's features ---
    _infer("too-few-features", {"inputs": [tensor([[1.0, 2.0, 3.0]])]}, "expected 4 features"),
    _infer("wrong-input-names", {"inputs": [tensor([1.0], [1], name=n) for n in "abcd"]}, "unknown a"),
    _infer("missing-column", {"inputs": _COLUMN[:3]}, "petal_width"),
    _infer("null-column-value", {"inputs": [tensor([None], [1], name=n) for n in IRIS_FEATURES]}, "got null"),
    _infer(
        "column-lengths",
        {"inputs": [tensor([1.0] * (i + 1), [i + 1], name=n) for i, n in enumerate(IRIS_FEATURES)]},
        "as many rows",
    ),
    _infer("duplicate-names", {"inputs": [tensor([1.0], [1], name="a"), tensor([1.0], [1], name="a")]}, "unique"),
    # --- the request ---
    _infer("unknown-output", {"inputs": [tensor(ROWS)], "outputs": [{"name": "transform"}]}, "unknown output"),
    _infer("no-inputs", {"inputs": []}, "inputs"),
    _infer("missing-inputs", {}, "inputs"),
    _infer("unknown-field", {"inputs": [tensor(ROWS)], "colour": 1}, "unknown"),
    _infer("id-not-string", {"inputs": [tensor(ROWS)], "id": 7}, "id"),
    _infer("parameters-not-object", {"inputs": [tensor(ROWS)], "parameters": [1]}, "parameters"),
    (
        "unknown-model",
        "POST",
        "/v2/models/nope/infer",
        json.dumps({"inputs": [tensor(ROWS)]}),
        JSON,
        404,
        "nope",
    ),
    (
        "nan",
        "POST",
        INFER,
        '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [NaN, 1, 2, 3]}]}',
        JSON,
        400,
        "finite",
    ),
    ("malformed-json", "POST", INFER, '{"inputs": [', JSON, 400, "json"),
    ("json-array-body", "POST", INFER, "[]", JSON, 400, ""),
    ("text-plain", "POST", INFER, "{}", {"Content-Type": "text/plain"}, 415, "json"),
    # --- the binary tensor data extension ---
    _binary("binary-short", _BINARY_INPUT, b"\0" * 8, "runs past"),
    _binary("binary-extra-bytes", _BINARY_INPUT, b"\0" * 20, "belong to no input"),
    _binary("binary-header-too-long", _BINARY_INPUT, b"\0" * 16, "Inference-Header", length="99999"),
    _binary("binary-header-not-number", _BINARY_INPUT, b"\0" * 16, "Inference-Header", length="ten"),
    _binary("binary-and-data", {"inputs": [{**_BINARY_INPUT["inputs"][0], "data": [1, 2, 3, 4]}]}, b"\0" * 16, "both"),
    _binary(
        "binary-odd-size",
        {"inputs": [{**_BINARY_INPUT["inputs"][0], "parameters": {"binary_data_size": 15}}]},
        b"\0" * 15,
        "whole number",
    ),
    _binary(
        "binary-bytes-truncated",
        {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
        b"\x09\0\0\0ab",
        "runs past",
    ),
    # --- models, versions, routes ---
    ("unknown-model-metadata", "GET", "/v2/models/nope", None, {}, 404, "nope"),
    ("unknown-model-ready", "GET", "/v2/models/nope/ready", None, {}, 404, "nope"),
    ("unknown-version", "GET", "/v2/models/iris_classifier/versions/9", None, {}, 404, "no version 9"),
    ("version-not-number", "GET", "/v2/models/iris_classifier/versions/x/ready", None, {}, 404, "numbers"),
    ("version-unicode-digit", "GET", "/v2/models/iris_classifier/versions/%C2%B2", None, {}, 404, "numbers"),
    ("invalid-model-name", "GET", "/v2/models/a.b", None, {}, 400, "model_name"),
    ("unknown-route", "GET", "/v2/nothing-here", None, {}, 404, ""),
    ("wrong-method", "GET", INFER, None, {}, 405, ""),
    ("load-unknown-model", "POST", "/v2/repository/models/never_seen/load", None, {}, 404, "model_path"),
    (
        "load-outside-model-dir",
        "POST",
        "/v2/repository/models/x/load",
        json.dumps({"parameters": {"model_path": "../../etc/passwd"}}),
        JSON,
        400,
        "",
    ),
    ("unload-unknown-model", "POST", "/v2/repository/models/never_seen/unload", None, {}, 404, "never_seen"),
]

# --- a model that takes a table (the penguins Pipeline): its columns, types, categories, nulls ---
PENGUINS_INFER = "/v2/models/penguins/infer"


def penguin_columns(row: dict, **changed) -> dict:
    """One penguins row as MLServer's ``pd`` content type sends it: a ``[1]`` input per column, strings as BYTES."""
    inputs = []
    for name, value in {**row, **changed}.items():
        if isinstance(value, str) or (value is None and name in ("island", "sex")):
            inputs.append({**tensor([value], [1], name, "BYTES"), "parameters": {"content_type": "str"}})
        else:
            inputs.append(tensor([value], [1], name, "INT64" if type(value) is int else "FP64"))
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def _typed(case: str, body: dict, contains: str) -> tuple:
    return (case, "POST", PENGUINS_INFER, json.dumps(body), JSON, 400, contains)


_PENGUIN = {
    "island": "Torgersen",
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "sex": "male",
}
_NO_SEX = penguin_columns(_PENGUIN)
_NO_SEX["inputs"] = _NO_SEX["inputs"][:-1]

V2_TYPED_BAD_REQUESTS = [
    _typed("unknown-category", penguin_columns(_PENGUIN, island="Atlantis"), "Feature 'island' must be one of"),
    _typed("missing-column", _NO_SEX, "sex"),
    _typed("string-in-numeric-column", penguin_columns(_PENGUIN, body_mass_g="heavy"), "must be a number"),
    _typed("number-in-string-column", penguin_columns(_PENGUIN, island=3.0), "'island' must be a string"),
    _typed("null-not-allowed", penguin_columns(_PENGUIN, island=None), "'island' must be a string, got null"),
    _typed("unknown-column", penguin_columns(_PENGUIN, beak_colour="red"), "beak_colour"),
    _typed("bytes-matrix", {"inputs": [tensor([["Torgersen"]], [1, 1], datatype="BYTES")]}, "BYTES"),
    _typed("infinite-number", penguin_columns(_PENGUIN, body_mass_g=1e309), "finite"),
]
