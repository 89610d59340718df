"""A request's features as a float64 matrix, checked as whole arrays: the one parser of prediction input.

Two steps, each done once for every caller:

- :func:`check_row` and :func:`check_rows` take what a client sent (a list of
  values, an object of named values, or a list of those). Values are JSON
  scalars: numbers finite as float64, strings, booleans, null. The common case,
  lists of numbers, is checked and converted with a few whole-array operations;
  any other request is walked value by value, to say precisely what is wrong.
  Whether a string or a null suits a column is the model's to say: rows that
  are not all numbers are kept as sent, for :mod:`app.model_input`.
- :func:`model_matrix` fits checked rows to a model that takes a float64
  matrix: its feature count, named features put in its order, nulls as NaN
  where the model takes them. :mod:`app.model_input` calls it for such models.
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

#: What one feature may be: a JSON scalar.
Value = float | int | str | bool | None
Row = Sequence[Value] | Mapping[str, Value]
SCALAR_TYPES = frozenset({int, float, str, bool, type(None)})


class FeatureError(ValueError):
    """Features a client sent that are no JSON scalars a model can take; ``messages`` as marshmallow reports them.

    ``messages`` is a list of messages for one row, or a dict of row index to
    messages for a batch.
    """

    def __init__(self, messages: list[str] | dict[int, list[str]]):
        super().__init__(messages)
        self.messages = messages


@dataclass(frozen=True, slots=True)
class Features:
    """Checked rows: ``matrix`` when every row is a list of one width, else ``rows`` as sent (lists or named).

    ``text``: every value is the text of a CSV cell, to be read as its column's type.
    """

    matrix: np.ndarray | None = None
    rows: tuple[Row, ...] = ()
    text: bool = False

    def __len__(self) -> int:
        return len(self.matrix) if self.matrix is not None else len(self.rows)


# --- what a client may send ------------------------------------------------------------------


def check_row(value: Any) -> Features:
    """One sample: a list of values, or an object of named values. Raises :class:`FeatureError`.

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
    if type(value) is list and set(map(type, value)) <= NUMBER_TYPES:  # each is finite; only their sum was not
        return Features(matrix=np.array([value], dtype=np.float64))
    return Features(rows=(value,))


def check_rows(value: list[Any], booleans_possible: bool = True, numbers_finite: bool = False) -> Features:
    """1 to :data:`MAX_BATCH_ROWS` samples (the count is the schema's to check); bad rows reported by index.

    ``booleans_possible=False`` says the JSON text the rows came from holds no
    ``true`` or ``false``: the values are then packed as C doubles in one call,
    which refuses strings, nulls and lists but would take a boolean for a
    number, instead of having each value's type checked first.
    ``numbers_finite=True`` says every number in them is finite as a float64
    (orjson parsed them), which typed rows then need not check.
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
    elif value and set(map(type, value)) <= {dict, list} and _scalar_rows(value, numbers_finite):
        return Features(rows=tuple(value))
    errors: dict[int, list[str]] = {}
    for index, row in enumerate(value):
        try:
            _raise_unless_valid(row)
        except FeatureError as exc:
            errors[index] = list(exc.messages)
    if errors:
        raise FeatureError(errors)
    return Features(rows=tuple(value))


def _scalar_rows(rows: list[Any], numbers_finite: bool = False) -> bool:
    """Whether every row holds 1 to :data:`MAX_FEATURES` JSON scalars, numbers finite as float64 (known
    when ``numbers_finite``): the typed rows' check in whole-list operations (False sends the rows to
    the precise check)."""
    lengths = set(map(len, rows))
    if min(lengths) < 1 or max(lengths) > MAX_FEATURES:
        return False
    if set(map(type, rows)) == {dict}:
        values = list(chain.from_iterable(map(dict.values, rows)))
    else:
        values = list(chain.from_iterable(row.values() if type(row) is dict else row for row in rows))
    kinds = set(map(type, values))
    if not kinds <= SCALAR_TYPES:
        return False
    if numbers_finite or not kinds & NUMBER_TYPES:
        return True
    try:  # their sum is finite only when each number is; an integer beyond float64 overflows it
        return math.isfinite(sum(v for v in values if type(v) in NUMBER_TYPES))
    except OverflowError:
        return False


def _finite_matrix(rows: list[list[Any]], width: int) -> np.ndarray | None:
    """Numbers to a float64 matrix, or None when one is not finite as a float64 (say which, value by value)."""
    try:
        matrix = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    except OverflowError:  # an integer beyond float64
        return None
    return _finite(matrix, rows, width)


def _packed_matrix(rows: list[list[Any]], width: int) -> np.ndarray | None:
    """JSON numbers, and nothing else JSON has but booleans, to a float64 matrix; None for anything else."""
    matrix = packed_doubles(rows, len(rows) * width)
    return None if matrix is None else _finite(matrix, rows, width)


def packed_doubles(rows: list[list[Any]], count: int) -> np.ndarray | None:
    """The ``count`` values of ``rows`` (lists) as flat float64 values, packed as C doubles in one call.

    Takes JSON numbers, and of the rest of JSON only booleans (as 1.0 and 0.0): a caller that refuses
    them knows the text held none. None for a string, null, list or object, or an integer beyond
    float64. Whether each number is finite is the caller's to check.
    """
    values = np.empty(count, dtype=np.float64)
    try:
        _doubles(count).pack_into(values, 0, *chain.from_iterable(rows))
    except (struct.error, OverflowError):  # a string, null, list or object; an integer beyond float64
        return None
    return values


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
        raise FeatureError(["Must be a list of values or an object of named values."])
    if not row:
        raise FeatureError(["Must contain at least one feature."])
    if len(row) > MAX_FEATURES:
        raise FeatureError([f"Must contain at most {MAX_FEATURES} features."])
    for key, value in items:
        kind = type(value)
        if kind not in SCALAR_TYPES:
            raise FeatureError(
                [f"{where.format(key)} must be a number, string, boolean or null, got {kind_of(value)}."]
            )
        if kind in NUMBER_TYPES:
            problem = _number_problem(value)
            if problem:
                raise FeatureError([f"{where.format(key)} {problem}."])


def kind_of(value: Any) -> str:
    """How JSON names a value's type: number, string, boolean, null, array, object."""
    kind = type(value).__name__
    return "number" if type(value) in NUMBER_TYPES else _KINDS.get(kind, kind)


def _number_problem(value: Any) -> str | None:
    if type(value) not in NUMBER_TYPES:
        return f"must be a number, got {kind_of(value)}"
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
    nullable: bool = False,
) -> np.ndarray:
    """The rows as the model's float64 input: ``expected`` columns, named features in ``names``' order.

    ``nullable``: the model takes NaN, so a null is NaN; else it is refused.
    Raises :class:`app.errors.InvalidFeatures` (422) naming the row when a batch has several.
    """
    matrix = features if isinstance(features, np.ndarray) else features.matrix
    if matrix is not None:
        if expected is not None and matrix.shape[1] != expected:
            where = "row 0: " if len(matrix) > 1 else ""
            raise InvalidFeatures(f"{where}expected {expected} features, got {matrix.shape[1]}.")
        return matrix
    assert isinstance(features, Features)
    ordered = ordered_rows(features.rows, expected, names, model_name)
    if set(map(type, chain.from_iterable(ordered))) <= NUMBER_TYPES:
        return np.asarray(ordered, dtype=np.float64)
    return np.asarray([_numbers(row, index, len(ordered), names, nullable) for index, row in enumerate(ordered)])


def _numbers(row: Sequence[Value], index: int, count: int, names: Sequence[str] | None, nullable: bool) -> list[float]:
    out = []
    for j, value in enumerate(row):
        if type(value) in NUMBER_TYPES:
            out.append(value)
        elif value is None and nullable:
            out.append(math.nan)
        else:
            raise InvalidFeatures(
                f"{row_prefix(index, count)}{feature_label(j, names)} must be a number, got {kind_of(value)}."
            )
    return out


def row_prefix(index: int, count: int) -> str:
    """``"row 3: "`` in a batch, nothing for a single row."""
    return f"row {index}: " if count > 1 else ""


def feature_label(index: int, names: Sequence[str] | None) -> str:
    return f"Feature '{names[index]}'" if names is not None else f"Feature {index}"


def ordered_rows(
    rows: Sequence[Row], expected: int | None, names: Sequence[str] | None, model_name: str
) -> list[Sequence[Value]]:
    """Each row as a list in the model's order: named rows by ``names``, lists checked against ``expected``."""
    ordered: list[Sequence[Value]] = []
    for index, row in enumerate(rows):
        where = row_prefix(index, len(rows))
        if isinstance(row, Mapping):
            ordered.append(_named_row(row, names, model_name, where))
            continue
        if expected is not None and len(row) != expected:
            raise InvalidFeatures(f"{where}expected {expected} features, got {len(row)}.")
        ordered.append(row)
    if len({len(row) for row in ordered}) != 1:
        raise InvalidFeatures("all rows must have the same number of features.")
    return ordered


def _named_row(row: Mapping[str, Value], names: Sequence[str] | None, model_name: str, where: str) -> list[Value]:
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
