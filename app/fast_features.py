"""A prediction request's features as a float64 matrix, checked as a whole, for the fast lane.

The Flask views check each value against a schema field; the lane checks what
the model needs (numbers, finite, the model's width) in a few passes over the
whole input and raises :class:`Fallback` for anything else, which the views
then answer with their precise error.
"""

from __future__ import annotations

import functools
import math
import struct
from itertools import chain
from typing import Any

import numpy as np
import orjson

from app.api.fields import MAX_BATCH_ROWS, MAX_FEATURES
from app.inference import feature_count, feature_names_of


class Fallback(Exception):
    """Not a request the lane answers exactly as Flask would: Flask answers it."""


def row_matrix(served: Any, features: Any) -> np.ndarray:
    """One sample as a 1-row float64 matrix in the model's order, or Fallback for anything unusual.

    Named features are ordered by the model's names; values must be JSON numbers
    (``bool`` is a subclass of ``int`` but its type is not) whose sum is finite,
    which holds only when each of them is.
    """
    if type(features) is dict:
        names = feature_names_of(served)
        if names is None or len(features) != len(names) or not features.keys() == set(names):
            raise Fallback
        features = [features[n] for n in names]
    elif type(features) is not list:
        raise Fallback
    expected = feature_count(served)
    if not 1 <= len(features) <= MAX_FEATURES or (expected is not None and len(features) != expected):
        raise Fallback
    for value in features:
        if type(value) is not float and type(value) is not int:
            raise Fallback
    try:
        if not math.isfinite(sum(features)):
            raise Fallback
        return np.array([features], dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise Fallback from None


#: The bytes JSON numbers are written with, and whitespace: deleted, a batch body's skeleton remains.
_NUMBER_BYTES = b"0123456789.+-eE \t\r\n"


def _skeleton(text: bytes) -> bytes:
    return text.translate(None, _NUMBER_BYTES)


def batch_matrix(served: Any, data: dict[str, Any], body: bytes) -> np.ndarray:
    """The batch's rows as a float64 matrix, checked as one array, or Fallback.

    Instead of the type of each of (up to) a million values, the body's
    skeleton is checked: with the bytes numbers are written with deleted, n rows
    of w numbers leave exactly ``[[,,,],[,,,],...]`` between the first ``[`` and
    the last ``]``, and the keys and model name around them. Anything else
    among the features (a string, boolean or null, a nested, empty or short
    row, a number in place of a row) leaves other bytes there.
    """
    rows = data["features"]
    if type(rows) is not list or not 1 <= len(rows) <= MAX_BATCH_ROWS or type(rows[0]) is not list:
        raise Fallback
    width = len(rows[0])
    expected = feature_count(served)
    if not 1 <= width <= MAX_FEATURES or (expected is not None and width != expected):
        raise Fallback
    skeleton = _skeleton(body)
    start, end = skeleton.find(b"["), skeleton.rfind(b"]")
    if skeleton[start : end + 1] != b"[" + b",".join([b"[" + b"," * (width - 1) + b"]"] * len(rows)) + b"]":
        raise Fallback
    around = _skeleton(orjson.dumps({**data, "features": []}))  # the keys and values, as the client wrote them?
    if sorted(skeleton[:start] + skeleton[end + 1 :]) != sorted(around.replace(b"[]", b"", 1)):
        raise Fallback
    try:  # packing the values as C doubles is faster than fromiter (hot: 60 us against 83 for 4,000)
        flat = np.frombuffer(_doubles(len(rows) * width).pack(*chain.from_iterable(rows)), dtype=np.float64)
    except (OverflowError, struct.error, TypeError):
        raise Fallback from None
    if not np.isfinite(flat).all():
        raise Fallback
    return flat.reshape(len(rows), width)


@functools.lru_cache(maxsize=64)
def _doubles(count: int) -> struct.Struct:
    return struct.Struct(f"{count}d")
