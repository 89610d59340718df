"""The V2 request's ``inputs``: the one-pass check takes only what the documented nested schema takes,
and the quick conversion of numeric ``data`` gives what the value-by-value one gives."""

from __future__ import annotations

import marshmallow as ma
import numpy as np
import pytest

from app.api.v2.schemas import InferenceRequestSchema, RequestInputSchema, plain_input
from app.api.v2.tensors import Inputs, TensorError, from_json
from app.extensions import JsonBodyParser

GOOD = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}

#: Inputs the one-pass check accepts as they are.
PLAIN = [
    GOOD,
    {"name": "x", "shape": [], "datatype": "FP64", "data": [1.0]},
    {"name": "x" * 256, "shape": [2**31] * 8, "datatype": "X" * 16, "data": []},
    {"name": "x", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
    {"name": "x", "shape": [1], "datatype": "BYTES", "parameters": None, "data": ["a"]},
    {"name": "x", "shape": [0], "datatype": "whatever", "data": [None, True, "a", [1]]},  # decoding's to judge
]
#: Inputs left to the nested schema: some it refuses, some it takes.
NOT_PLAIN = [
    "input",
    None,
    [GOOD],
    {**GOOD, "colour": 1},
    {k: v for k, v in GOOD.items() if k != "name"},
    {k: v for k, v in GOOD.items() if k != "shape"},
    {k: v for k, v in GOOD.items() if k != "datatype"},
    {**GOOD, "name": ""},
    {**GOOD, "name": "x" * 257},
    {**GOOD, "name": 7},
    {**GOOD, "name": None},
    {**GOOD, "datatype": ""},
    {**GOOD, "datatype": "X" * 17},
    {**GOOD, "datatype": 64},
    {**GOOD, "shape": "1x4"},
    {**GOOD, "shape": [1.0, 4]},
    {**GOOD, "shape": [True, 4]},
    {**GOOD, "shape": [-1, 4]},
    {**GOOD, "shape": [2**31 + 1]},
    {**GOOD, "shape": [1] * 9},
    {**GOOD, "shape": None},
    {**GOOD, "parameters": [1]},
    {**GOOD, "parameters": "binary"},
    {**GOOD, "data": None},
    {**GOOD, "data": 5.0},
    {**GOOD, "data": {"a": 1}},
]


@pytest.mark.parametrize("spec", PLAIN, ids=range(len(PLAIN)))
def test_a_plain_input_is_one_the_schema_takes_as_it_is(spec):
    assert plain_input(spec)
    assert RequestInputSchema().load(spec) == {"parameters": None, **spec}


@pytest.mark.parametrize("spec", NOT_PLAIN, ids=range(len(NOT_PLAIN)))
def test_anything_else_goes_to_the_schema(spec):
    assert not plain_input(spec)


def test_the_schema_names_what_is_wrong_with_an_input_that_is_not_plain():
    with pytest.raises(ma.ValidationError) as caught:
        InferenceRequestSchema().load({"inputs": [GOOD, {**GOOD, "shape": [True, 4]}]})
    assert caught.value.messages == {"inputs": {1: {"shape": {0: ["Not a valid integer."]}}}}


@pytest.mark.parametrize("booleans", [b"", b' "parameters": {"x": true},'])
def test_the_inputs_remember_whether_the_body_can_hold_a_boolean(booleans):
    body = JsonBodyParser().parse_body(
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}],' + booleans + b' "id": "1"}'
    )
    inputs = InferenceRequestSchema().load(body)["inputs"]
    assert type(inputs) is Inputs and inputs.booleans_possible is bool(booleans)


NUMERIC = [
    [1.5, 2, -3.25],
    [[1.5, 2.0], [3, 4e300]],
    [[0.1, 0.2, 0.3]] * 5,
    [float("nan"), 1.0],  # a NaN only the standard library's JSON parser gives: kept, for the model to refuse
    [[float("inf"), 1.0]],
    [[[1.0, 2.0]], [[3.0, 4.0]]],
    [[1.0, None], [2.0, 3.0]],
    [None, 2.0],
    [[], []],
]


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize("booleans_possible", [True, False])
@pytest.mark.parametrize("data", NUMERIC, ids=range(len(NUMERIC)))
def test_numeric_data_converts_as_numpy_does(data, booleans_possible, datatype):
    with np.errstate(over="ignore"):
        expected = np.array(data, dtype=np.float64).astype(datatype.replace("FP", "float")).ravel()
        found = from_json(data, datatype, "x", booleans_possible=booleans_possible)
    assert found.dtype == expected.dtype
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[1.0, True]], "must be numbers"),
        ([True, 1.0], "must be numbers"),
        ([[1.0, "2"]], "must be numbers"),
        ([[1.0, 2.0], [3.0]], "regular"),
        ([[1.0], []], "regular"),
        ([[1.0], 2.0], "regular"),
        ([[10**400, 1.0]], "range"),
        ([10**400], "range"),
    ],
)
def test_bad_numeric_data_is_named(data, message):
    booleans_possible = "True" in repr(data)  # as the body's text says: only then may the data hold one
    with pytest.raises(TensorError, match=message):
        from_json(data, "FP64", "x", booleans_possible=booleans_possible)
