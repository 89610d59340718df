"""A request's features as a float64 matrix, checked as whole arrays: the one parser of prediction input.

Two steps, each done once for every caller:

- :func:`check_row` and :func:`check_rows` take what a client sent (a list of
  numbers, an object of named numbers, or a list of those) and accept exactly
  JSON numbers that are finite as float64. The common case, lists of numbers,
  is checked and converted with a few whole-array operations; only a request
  that fails them is walked value by value, to say precisely what is wrong.
- :func:`model_matrix` fits checked rows to one model: its feature count, and
  named features put in its order. The views use it after the request schema,
  batch jobs on each chunk of a file.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from app.errors import InvalidFeatures

MAX_FEATURES = 1000
MAX_BATCH_ROWS = 1000
#: The Python types JSON numbers parse to (bool is a subclass of int, but its type is not int).
NUMBER_TYPES = frozenset({int, float})
_KINDS = {"str": "string", "list": "array", "dict": "object", "bool": "boolean", "NoneType": "null"}

Row = Sequence[float] | Mapping[str, float]


class FeatureError(ValueError):
    """Features a client sent that are not numbers the model can take; ``messages`` as marshmallow reports them.

    ``messages`` is a list of messages for one row, or a dict of row index to
    messages for a batch.
    """

    def __init__(self, messages: list[str] | dict[int, list[str]]):
        super().__init__(messages)
        self.messages = messages


@dataclass(frozen=True, slots=True)
class Features:
    """Checked rows: ``matrix`` when every row is a list of one width, else ``rows`` as sent (lists or named)."""

    matrix: np.ndarray | None = None
    rows: tuple[Row, ...] = ()

    def __len__(self) -> int:
        return len(self.matrix) if self.matrix is not None else len(self.rows)


# --- what a client may send ------------------------------------------------------------------


def check_row(value: Any) -> Features:
    """One sample: a list of numbers, or an object of named numbers. Raises :class:`FeatureError`.

    A few numbers are checked in Python (their sum is finite only when each of
    them is, and a sum that overflows sends the row to the precise check).
    """
    if type(value) is list and 0 < len(value) <= MAX_FEATURES and set(map(type, value)) <= NUMBER_TYPES:
        try:
            finite = math.isfinite(sum(value))
        except OverflowError:  # an integer beyond float64
            finite = False
        if finite:
            return Features(matrix=np.array([value], dtype=np.float64))
    _raise_unless_valid(value)
    if type(value) is list:  # every value is finite; only their sum was not
        return Features(matrix=np.array([value], dtype=np.float64))
    return Features(rows=(value,))


def check_rows(value: list[Any], booleans_possible: bool = True) -> Features:
    """1 to :data:`MAX_BATCH_ROWS` samples (the count is the schema's to check); bad rows reported by index.

    ``booleans_possible=False`` says the JSON text the rows came from holds no
    ``true`` or ``false``: the values are then packed as C doubles in one call,
    which refuses strings, nulls and lists but would take a boolean for a
    number, instead of having each value's type checked first.
    """
    if value and set(map(type, value)) == {list}:
        widths = set(map(len, value))
        if len(widths) == 1:
            width = widths.pop()
            if 0 < width <= MAX_FEATURES:
                if booleans_possible:
                    exact = set(map(type, chain.from_iterable(value))) <= NUMBER_TYPES
                    matrix = _finite_matrix(value, width) if exact else None
                else:
                    matrix = _packed_matrix(value, width)
                if matrix is not None:
                    return Features(matrix=matrix)
    errors: dict[int, list[str]] = {}
    for index, row in enumerate(value):
        try:
            _raise_unless_valid(row)
        except FeatureError as exc:
            errors[index] = list(exc.messages)
    if errors:
        raise FeatureError(errors)
    return Features(rows=tuple(value))


def _finite_matrix(rows: list[list[Any]], width: int) -> np.ndarray | None:
    """Numbers to a float64 matrix, or None when one is not finite as a float64 (say which, value by value)."""
    try:
        matrix = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    except OverflowError:  # an integer beyond float64
        return None
    return _finite(matrix, rows, width)


def _packed_matrix(rows: list[list[Any]], width: int) -> np.ndarray | None:
    """JSON numbers, and nothing else JSON has but booleans, to a float64 matrix; None for anything else."""
    matrix = np.empty(len(rows) * width, dtype=np.float64)
    try:
        _doubles(len(matrix)).pack_into(matrix, 0, *chain.from_iterable(rows))
    except (struct.error, OverflowError):  # a string, null, list or object; an integer beyond float64
        return None
    return _finite(matrix, rows, width)


def _finite(matrix: np.ndarray, rows: list[list[Any]], width: int) -> np.ndarray | None:
    with np.errstate(over="ignore"):  # a sum of finite values can overflow; the values decide then
        total = matrix.sum()
    if not np.isfinite(total) and not np.isfinite(matrix).all():
        return None
    return matrix.reshape(len(rows), width)


@functools.lru_cache(maxsize=64)
def _doubles(count: int) -> struct.Struct:
    return struct.Struct(f"{count}d")


def _raise_unless_valid(row: Any) -> None:
    """The precise check of one row, value by value: raise :class:`FeatureError` naming what is wrong."""
    if type(row) is list:
        items: Any = enumerate(row)
        where = "Feature {}"
    elif type(row) is dict:
        items = row.items()
        where = "Feature '{}'"
    else:
        raise FeatureError(["Must be a list of numbers or an object of named numbers."])
    if not row:
        raise FeatureError(["Must contain at least one feature."])
    if len(row) > MAX_FEATURES:
        raise FeatureError([f"Must contain at most {MAX_FEATURES} features."])
    for key, value in items:
        problem = _number_problem(value)
        if problem:
            raise FeatureError([f"{where.format(key)} {problem}."])


def _number_problem(value: Any) -> str | None:
    if type(value) not in NUMBER_TYPES:
        kind = type(value).__name__
        return f"must be a number, got {_KINDS.get(kind, kind)}"
    try:
        number = float(value)
    except OverflowError:  # a 400-digit JSON integer is a valid int but no float64
        return "must be a finite number, got an integer beyond float64"
    if not math.isfinite(number):
        return f"must be a finite number, got {value}"
    return None


# --- what one model takes --------------------------------------------------------------------


def model_matrix(
    features: Features | np.ndarray,
    expected: int | None,
    names: Sequence[str] | None,
    model_name: str,
) -> np.ndarray:
    """The rows as the model's float64 input: ``expected`` columns, named features in ``names``' order.

    Raises :class:`app.errors.InvalidFeatures` (422) naming the row when a batch has several.
    """
    matrix = features if isinstance(features, np.ndarray) else features.matrix
    if matrix is not None:
        if expected is not None and matrix.shape[1] != expected:
            where = "row 0: " if len(matrix) > 1 else ""
            raise InvalidFeatures(f"{where}expected {expected} features, got {matrix.shape[1]}.")
        return matrix
    assert isinstance(features, Features)
    rows = features.rows
    ordered: list[Sequence[float]] = []
    for index, row in enumerate(rows):
        where = f"row {index}: " if len(rows) > 1 else ""
        if isinstance(row, Mapping):
            ordered.append(_named_row(row, names, model_name, where))
            continue
        if expected is not None and len(row) != expected:
            raise InvalidFeatures(f"{where}expected {expected} features, got {len(row)}.")
        ordered.append(row)
    if len({len(row) for row in ordered}) != 1:
        raise InvalidFeatures("all rows must have the same number of features.")
    return np.asarray(ordered, dtype=np.float64)


def _named_row(row: Mapping[str, float], names: Sequence[str] | None, model_name: str, where: str) -> list[float]:
    if names is None:
        raise InvalidFeatures(f"{where}model '{model_name}' has no feature names; send features as a list of numbers.")
    missing = [n for n in names if n not in row]
    unknown = [k for k in row if k not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        raise InvalidFeatures(f"{where}named features do not match the model ({'; '.join(parts)}).")
    return [row[n] for n in names]
