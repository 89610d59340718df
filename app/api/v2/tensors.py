"""Open Inference Protocol tensors: JSON or binary ``data`` to NumPy arrays, and arrays back to tensors.

A request tensor is ``{"name", "shape", "datatype", "data"}``, its data row-major,
flat or nested; with the binary tensor data extension its bytes follow the JSON
header instead (``parameters.binary_data_size``). Each tensor is checked whole:
its datatype is known, its values are of that type, and their count fits its
shape. What the model then makes of the arrays is :mod:`app.api.v2.infer`'s job.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from app.errors import BadRequest
from app.features import NUMBER_TYPES, packed_doubles

#: Every datatype of the protocol (BF16 excepted: NumPy has none) and its little-endian NumPy dtype.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
DATATYPES = tuple(DTYPES)
#: The datatypes whose JSON data may take the quick conversion (:func:`_float_values`).
FLOATS = frozenset({"FP16", "FP32", "FP64"})
#: The Python types JSON values of each kind of datatype parse to (bool is no int here).
_NULL = frozenset({type(None)})
_JSON_TYPES = {
    "b": frozenset({bool}),
    "i": frozenset({int}),
    "u": frozenset({int}),
    "f": frozenset({int, float, type(None)}),  # null is NaN: a missing value, for the model's signature to allow
}
_STRINGS = frozenset({str, type(None)})
_NUMPY_DATATYPE = {dtype.str: name for name, dtype in DTYPES.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")
IRREGULAR = "nested 'data' must be regular: lists of one length at each level."


class TensorError(BadRequest):
    """A tensor that is not what it says it is: 400, the protocol's status for a bad request."""


class Inputs(list):
    """A request's input tensors as its schema loaded them, and whether the JSON text they came from holds
    a ``true`` or ``false`` (:class:`app.extensions.JsonObject`): where it holds none, numeric ``data``
    is converted in one call without each value's type being checked first (:func:`from_json`)."""

    __slots__ = ("booleans_possible",)

    def __init__(self, specs: Sequence[dict[str, Any]] = (), booleans_possible: bool = True) -> None:
        super().__init__(specs)
        self.booleans_possible = booleans_possible


@dataclass(frozen=True, slots=True)
class Tensor:
    """One decoded input: its name, its datatype and its values as an array of its shape."""

    name: str
    datatype: str
    array: np.ndarray


def decode_inputs(inputs: Sequence[dict[str, Any]], binary: memoryview | bytes = b"") -> list[Tensor]:
    """The request's inputs as arrays; ``binary`` is the body after the JSON header (binary extension)."""
    tensors: list[Tensor] = []
    offset = 0
    booleans_possible = getattr(inputs, "booleans_possible", True)
    for spec in inputs:
        name, datatype, shape = spec["name"], spec["datatype"], spec["shape"]
        where = f"input '{name}'"
        if datatype not in DTYPES:
            raise TensorError(f"{where}: unknown datatype '{datatype}'; the datatypes are {', '.join(DATATYPES)}.")
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if "data" in spec:
                raise TensorError(f"{where}: has both 'data' and parameters.binary_data_size; send one.")
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise TensorError(
                    f"{where}: binary_data_size {size!r} runs past the {len(binary)} bytes after the JSON header."
                )
            array = from_bytes(bytes(binary[offset : offset + size]), datatype, where)
            offset += size
        elif "data" in spec:
            array = from_json(spec["data"], datatype, where, booleans_possible)
        else:
            raise TensorError(f"{where}: has no 'data' (nor parameters.binary_data_size).")
        tensors.append(Tensor(name, datatype, _reshaped(array, shape, where)))
    if offset != len(binary):
        raise TensorError(f"{len(binary) - offset} bytes after the JSON header belong to no input's binary_data_size.")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise TensorError(f"Input names must be unique; got {names}.")
    return tensors


def from_json(data: Any, datatype: str, where: str, booleans_possible: bool = True) -> np.ndarray:
    """JSON ``data`` (flat, or nested row-major) as a flat array of ``datatype``, every value checked.

    ``booleans_possible=False``: the JSON text holds no ``true`` or ``false`` (see :class:`Inputs`).
    """
    if datatype in FLOATS:
        numbers = _float_values(data, booleans_possible)
        if numbers is not None:
            if datatype == "FP64":
                return numbers
            with np.errstate(over="ignore"):  # a float too large for FP32 becomes infinity: the model refuses it
                return numbers.astype(DTYPES[datatype])
    flat = _flatten(data, where)
    found = set(map(type, flat))
    if list in found:
        raise TensorError(f"{where}: {IRREGULAR}")
    if datatype == "BYTES":
        if not found <= _STRINGS:
            raise TensorError(f"{where}: BYTES data must be strings (or null).")
        return np.array(flat, dtype=object)
    dtype = DTYPES[datatype]
    allowed = _JSON_TYPES[dtype.kind]
    if not found <= allowed:
        if found <= allowed | _NULL:
            raise TensorError(f"{where}: null in {datatype} data; a null is sent in an FP or BYTES input.")
        wrong = sorted(t.__name__ for t in found - allowed)
        raise TensorError(f"{where}: {datatype} data must be {_kind_text(dtype.kind)}; got {', '.join(wrong)}.")
    try:
        with np.errstate(over="ignore"):  # a float too large for FP32 becomes infinity: the model refuses it
            return np.array(flat, dtype=dtype)
    except (OverflowError, ValueError):
        raise TensorError(f"{where}: a value is out of {datatype}'s range.") from None


def _float_values(data: Any, booleans_possible: bool) -> np.ndarray | None:
    """The common case in whole-list operations: a flat list, or regular rows, of numbers, as flat float64
    values. None for anything else (nulls, deeper nesting, a bad value), which :func:`from_json` then
    checks value by value. Whether each number is finite is the model's input's to say, as there."""
    if type(data) is not list or not data:
        return None
    kinds = set(map(type, data))
    if kinds <= NUMBER_TYPES:
        try:
            return np.array(data, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the precise path says so
            return None
    if kinds != {list}:
        return None
    widths = set(map(len, data))
    if len(widths) != 1:
        return None
    count = len(data) * widths.pop()
    if not booleans_possible:
        return packed_doubles(data, count)
    if not set(map(type, chain.from_iterable(data))) <= NUMBER_TYPES:
        return None
    try:
        return np.fromiter(chain.from_iterable(data), dtype=np.float64, count=count)
    except OverflowError:  # an integer beyond float64: the precise path says so
        return None


def _kind_text(kind: str) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}[kind]


def _flatten(data: Any, where: str) -> list[Any]:
    """Nested lists to one flat list, row-major, each level checked whole (values are the caller's)."""
    if type(data) is not list:
        raise TensorError(f"{where}: 'data' must be a list (flat or nested row-major).")
    flat = data
    while flat and type(flat[0]) is list:
        if set(map(type, flat)) != {list} or len(set(map(len, flat))) != 1:
            raise TensorError(f"{where}: {IRREGULAR}")
        flat = list(chain.from_iterable(flat))
    return flat


def from_bytes(raw: bytes, datatype: str, where: str) -> np.ndarray:
    """A binary tensor (the extension's little-endian, row-major layout) as a flat array."""
    if datatype == "BYTES":
        return np.array(_split_strings(raw, where), dtype=object)
    dtype = DTYPES[datatype]
    if len(raw) % dtype.itemsize:
        raise TensorError(f"{where}: {len(raw)} bytes are not a whole number of {datatype} values.")
    return np.frombuffer(raw, dtype=dtype)


def _split_strings(raw: bytes, where: str) -> list[str]:
    """BYTES elements: each a 4-byte little-endian length and that many bytes (UTF-8 text here)."""
    values: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise TensorError(f"{where}: truncated BYTES element length at byte {offset}.")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise TensorError(f"{where}: a BYTES element runs past the input's binary data.")
        try:
            values.append(raw[offset : offset + length].decode())
        except UnicodeDecodeError:
            raise TensorError(f"{where}: a BYTES element is not UTF-8 text.") from None
        offset += length
    return values


def _reshaped(array: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    count = math.prod(shape)  # Python's integers: a product past 64 bits must not wrap around
    if count != array.size:
        raise TensorError(f"{where}: shape {shape} needs {count} values; the data has {array.size}.")
    return array.reshape(shape)


# --- outputs ----------------------------------------------------------------------------------


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of an output array (text and other objects are BYTES)."""
    found = _NUMPY_DATATYPE.get(array.dtype.str)  # a native little-endian array, as the model's nearly always are
    return found if found is not None else _NUMPY_DATATYPE.get(array.dtype.newbyteorder("<").str, "BYTES")


def output_tensor(name: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes]:
    """An output's JSON (without ``data`` when ``binary``) and its binary bytes (empty unless ``binary``)."""
    datatype = datatype_of(array)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if not binary:
        tensor["data"] = [str(v) for v in array.ravel()] if datatype == "BYTES" else array.ravel()
        return tensor, b""
    if datatype == "BYTES":
        raw = b"".join(_LENGTH.pack(len(e)) + e for e in (str(v).encode() for v in array.ravel()))
    else:
        raw = np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return tensor, raw


def response_body(header: dict[str, Any], chunks: list[bytes]) -> tuple[bytes, int | None]:
    """The response body and, when outputs are binary, the JSON header's length for the
    ``Inference-Header-Content-Length`` header."""
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not any(chunks):
        return head, None
    return b"".join((head, *chunks)), len(head)
