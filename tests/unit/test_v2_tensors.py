"""V2 tensors: JSON and binary data to arrays, arrays to output tensors (:mod:`app.api.v2.tensors`)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from app.api.v2.tensors import TensorError, datatype_of, decode_inputs, from_bytes, output_tensor, response_body


def strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def test_json_data_flat_or_nested_gives_the_same_array():
    flat = decode_inputs([{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}])[0]
    nested = decode_inputs([{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}])[0]
    assert flat.array.dtype == np.int32 and np.array_equal(flat.array, nested.array)
    assert flat.array.tolist() == [[1, 2], [3, 4]]


def test_bool_and_bytes_json():
    found = decode_inputs(
        [
            {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "é"]},
        ]
    )
    assert found[0].array.tolist() == [True, False] and found[1].array.tolist() == ["a", "é"]


def test_binary_inputs_are_taken_in_order():
    ints = np.array([1, 2, 3], dtype="<i8").tobytes()
    text = strings(b"red", "grün".encode())
    inputs = [
        {"name": "n", "shape": [3], "datatype": "INT64", "parameters": {"binary_data_size": len(ints)}},
        {"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(text)}},
    ]
    n, s = decode_inputs(inputs, ints + text)
    assert n.array.tolist() == [1, 2, 3] and s.array.tolist() == ["red", "grün"]


def test_binary_bytes_that_are_not_text_are_refused():
    with pytest.raises(TensorError, match="UTF-8"):
        from_bytes(strings(b"\xff\xfe"), "BYTES", "input 's'")


@pytest.mark.parametrize(
    ("array", "datatype"),
    [
        (np.zeros(2), "FP64"),
        (np.zeros(2, np.float32), "FP32"),
        (np.zeros(2, np.int64), "INT64"),
        (np.zeros(2, np.uint8), "UINT8"),
        (np.zeros(2, bool), "BOOL"),
        (np.array(["a"], object), "BYTES"),
        (np.array(["a"]), "BYTES"),
    ],
)
def test_output_datatypes(array, datatype):
    assert datatype_of(array) == datatype


def test_outputs_in_json_and_in_binary():
    values = np.array([[0.25], [0.5]])
    tensor, raw = output_tensor("p", values, binary=False)
    assert raw == b"" and tensor["shape"] == [2, 1] and tensor["data"].tolist() == [0.25, 0.5]
    tensor, raw = output_tensor("p", values, binary=True)
    assert "data" not in tensor and tensor["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(raw, "<f8").tolist() == [0.25, 0.5]
    tensor, raw = output_tensor("label", np.array([["setosa"], ["virginica"]], dtype=object), binary=True)
    assert tensor["datatype"] == "BYTES" and raw == strings(b"setosa", b"virginica")


def test_the_response_header_length_is_given_only_with_binary_outputs():
    body, length = response_body({"outputs": []}, [b""])
    assert length is None and body == b'{"outputs":[]}'
    body, length = response_body({"outputs": []}, [b"\x01\x02"])
    assert length == 14 and body.endswith(b"\x01\x02")
