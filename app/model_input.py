"""A request's checked rows as one model's input: a float64 matrix, or a DataFrame of its training columns.

The one way from rows to a model, for every endpoint and for batch jobs. A
model that takes a float64 matrix gets :func:`app.features.model_matrix` (the
fast path, unchanged); a model fitted on a DataFrame gets one with its
training column order and dtypes, categoricals as ``category`` with the
training categories, each value checked against the model's
:class:`~app.signature.Signature` first, so a bad request is a 422 naming the
column (and, in a batch, the row) rather than the model's exception. A model
whose adapter says it ``takes_table`` gets those typed columns as an
:class:`~app.adapters.Table` instead, with no DataFrame built.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from app import signature as signatures
from app.adapters import Table
from app.errors import InvalidFeatures
from app.features import (
    NUMBER_TYPES,
    FeatureError,
    Features,
    Row,
    Value,
    check_rows,
    kind_of,
    model_matrix,
    ordered_rows,
    row_prefix,
)
from app.signature import Field, Signature

if TYPE_CHECKING:
    from app.registry.served import ServedModel

ModelInput = Any  # np.ndarray | Table | pandas.DataFrame: pandas is imported only for models that take one
_SHOWN_CATEGORIES = 20


def signature_of(served: ServedModel) -> Signature:
    """The served model's signature: probed when it loaded, else (a model built by hand) as described."""
    if served.signature is None:
        served.signature = signatures.build(served.description, served.record.metadata)
    return served.signature


@dataclass(frozen=True, slots=True)
class Columns:
    """Named columns of one length: a table sent column by column (V2's ``pd`` content type).

    A model that takes a DataFrame of exactly these columns gets them as they are;
    any other model (or a missing or unknown column, to be named) gets them as named rows.
    """

    data: Mapping[str, Sequence[Value]]
    length: int

    def __len__(self) -> int:
        return self.length

    def features(self) -> Features:
        names = list(self.data)
        return Features(rows=tuple(dict(zip(names, row, strict=True)) for row in zip(*self.data.values(), strict=True)))


def model_input(served: ServedModel, rows: Features | Columns | np.ndarray | Sequence[Row]) -> ModelInput:
    """Checked rows (or a file's numbers, or raw rows) as the model's input, or raise 422 naming what is wrong."""
    if isinstance(rows, Columns):
        sig = signature_of(served)
        if sig.frame and sig.names is not None and rows.data.keys() == set(sig.names):
            return _table_input(served, _table(sig, [rows.data[name] for name in sig.names]))
        rows = rows.features()
    if not isinstance(rows, (Features, np.ndarray)):
        try:
            rows = check_rows(list(rows))
        except FeatureError as exc:
            raise InvalidFeatures(first_message(exc.messages)) from None
    sig = signature_of(served)
    if isinstance(rows, Features) and rows.text:
        rows = typed_text(sig, rows.rows)
    if not sig.frame:
        return model_matrix(rows, len(sig.fields) or None, sig.names, served.name, sig.nullable)
    return _table_input(served, table_of(sig, rows, served.name))


def _table_input(served: ServedModel, table: Table) -> ModelInput:
    """The table itself for a model that takes one (its adapter says so), else its DataFrame."""
    return table if served.description.takes_table else table.frame()


def first_message(messages: list[str] | dict[int, list[str]]) -> str:
    if isinstance(messages, dict):
        row, found = next(iter(messages.items()))
        return f"row {row}: {found[0]}"
    return messages[0]


def typed_text(sig: Signature, rows: Sequence[Row]) -> Features:
    """Rows of cell texts (a CSV file or body, by header) read as their columns' types: empty cells are null.

    A column the model does not have is left as text, for the unknown-column check to name.
    """
    by_name = {f.name: f for f in sig.fields}
    typed = []
    for index, row in enumerate(rows):
        where = row_prefix(index, len(rows))
        items = row.items() if isinstance(row, dict) else zip(sig.names or range(len(row)), row, strict=False)
        converted = {name: _read(by_name.get(name), name, text, where) for name, text in items}
        typed.append(converted if sig.names is not None else list(converted.values()))
    return Features(rows=tuple(typed))


def _read(field: Field | None, name: Any, text: Any, where: str) -> Value:
    if field is None or type(text) is not str:
        return text
    text = text.strip()
    if not text:
        return None
    if field.type == "string":
        return text
    if field.type == "boolean":
        found = {"true": True, "false": False, "1": True, "0": False}.get(text.lower())
        if found is None:
            raise InvalidFeatures(f"{where}Feature '{name}' must be a boolean, got '{text}'.")
        return found
    try:
        number = float(text)
    except ValueError:
        raise InvalidFeatures(f"{where}Feature '{name}' must be a number, got '{text}'.") from None
    if not math.isfinite(number):
        raise InvalidFeatures(f"{where}Feature '{name}' must be a finite number, got '{text}'.")
    return number


def table_of(sig: Signature, rows: Features | np.ndarray, model_name: str) -> Table:
    """The rows as a :class:`Table` of the signature's columns, every value checked against its column."""
    matrix = rows if isinstance(rows, np.ndarray) else rows.matrix
    raw: Sequence[Row] = matrix.tolist() if matrix is not None else rows.rows  # type: ignore[union-attr]
    names = sig.names or ()
    expected = set(names)
    # named rows, each with the expected names (compared in C, not row by row in Python)
    if raw and set(map(type, raw)) == {dict} and all(map(operator.eq, map(dict.keys, raw), repeat(expected))):
        columns: list[Sequence[Value]] = [list(map(operator.itemgetter(name), raw)) for name in names]
    else:
        columns = list(zip(*ordered_rows(raw, len(sig.fields), sig.names, model_name), strict=True))
    return _table(sig, columns)


def _table(sig: Signature, columns: Sequence[Sequence[Value]]) -> Table:
    """The signature's columns (values in its order), each checked, as typed arrays."""
    data = {column.name: _column(column, values) for column, values in zip(sig.fields, columns, strict=True)}
    return Table(data, len(columns[0]) if columns else 0)


#: What each column type takes, and how a message names it.
_FITS = {
    "number": (lambda v: type(v) in NUMBER_TYPES, "a number"),
    "string": (lambda v: type(v) is str, "a string"),
    "boolean": (lambda v: type(v) is bool, "a boolean"),
}


_KINDS = {"number": NUMBER_TYPES, "string": frozenset({str}), "boolean": frozenset({bool})}


def _column(field: Field, values: Sequence[Value]) -> Any:
    kinds = set(map(type, values))
    if field.type == "number":
        if kinds <= NUMBER_TYPES:
            return np.asarray(values, dtype=np.float64)
        _check(field, values)
        return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    _check(field, values)
    if field.type == "boolean":
        return np.asarray(values, dtype=bool if None not in values else object)
    return _strings(field, values)


def _check(field: Field, values: Sequence[Value]) -> None:
    """Raise 422 at the first value the column does not take, naming its row in a batch.

    Whole-column set operations decide the common case (every value fits); only a
    column that fails them is walked value by value, to name the row.
    """
    allowed = set(field.categories) if field.closed and field.categories is not None else None
    kinds = set(map(type, values))
    if field.nullable:
        kinds.discard(type(None))
    if kinds <= _KINDS[field.type] and (allowed is None or set(values) - {None} <= allowed):
        return
    for index, value in enumerate(values):
        problem = value_problem(field, value, allowed)
        if problem:
            raise InvalidFeatures(f"{row_prefix(index, len(values))}{problem}")


def value_problem(field: Field, value: Value, allowed: set[Any] | None = None) -> str | None:
    """What is wrong with ``value`` in this column (its type, a null it does not take, an unknown category)."""
    fits, expected = _FITS[field.type]
    if value is None:
        return None if field.nullable else f"Feature '{field.name}' must be {expected}, got null."
    if not fits(value):
        return f"Feature '{field.name}' must be {expected}, got {kind_of(value)}."
    if field.closed and field.categories is not None and value not in (allowed or field.categories):
        known = field.categories
        shown = ", ".join(f"'{c}'" for c in known[:_SHOWN_CATEGORIES]) + (
            ", ..." if len(known) > _SHOWN_CATEGORIES else ""
        )
        return f"Feature '{field.name}' must be one of {shown}, got '{value}'."
    return None


def row_problem(sig: Signature, row: Sequence[Value]) -> str | None:
    """The first problem of one row in the signature's order (a file's rows are checked one by one)."""
    for field, value in zip(sig.fields, row, strict=True):
        problem = value_problem(field, value)
        if problem:
            return problem
    return None


def _strings(field: Field, values: Sequence[Value]) -> Any:
    """A string column (already checked) as the dtype the model was fitted with."""
    import pandas as pd

    known = field.categories
    if field.dtype == "category":
        known_set = set(known or ())
        extra = [v for v in dict.fromkeys(values) if v is not None and v not in known_set]
        # Training categories first, so codes mean what they meant in training; an unknown value the
        # model may take (as missing, say) is appended rather than silently turned into a null here.
        # Categories of strings even when every value is null (inferred, they would be floats).
        return pd.Categorical(values, categories=pd.Index([*(known or ()), *extra], dtype=object))
    return np.asarray([np.nan if v is None else v for v in values], dtype=object)


def probe_signature(served: ServedModel) -> Signature:
    """Load time: the signature with what the model accepts (nulls, unknown categories) asked of the model."""
    sig = signatures.build(served.description, served.record.metadata)
    declared = [item["name"] for item in served.record.metadata.get("signature") or () if "nullable" in item]
    # The probe rows go to the model unchecked: nulls and unknown categories are what it asks about.
    permissive = replace(sig, fields=tuple(replace(f, nullable=True, closed=False) for f in sig.fields))

    def accepts(row: list[Any]) -> bool:
        try:
            run_once(served, _one_row(served, permissive, row))
        except Exception:
            return False
        return True

    return signatures.probe(sig, accepts, declared) if sig.fields else sig


def _one_row(served: ServedModel, sig: Signature, row: list[Any]) -> ModelInput:
    """One row as the model's input: a float64 row (NaN for null), or its typed columns."""
    if not sig.frame:
        return np.asarray([[math.nan if v is None else v for v in row]], dtype=np.float64)
    return _table_input(served, table_of(sig, Features(rows=(row,)), served.name))


def trial_input(served: ServedModel) -> ModelInput | None:
    """One row every column of which the model was trained on, as its input; None when its width is unknown."""
    sig = signature_of(served)
    if not sig.fields:
        return None
    return _one_row(served, sig, signatures.example_row(sig))


def run_once(served: ServedModel, X: ModelInput) -> None:
    """Predict (and, for classifiers, give probabilities for) ``X``, for a probe: nothing counted or logged.

    Raises when the model fails or answers NaN (a fast kernel given NaN may not
    raise as its estimator would): either way the model does not take ``X``.
    """
    predicted = np.asarray(served.model.predict(X))
    if predicted.dtype.kind == "f" and not np.isfinite(predicted).all():
        raise ValueError("the model's prediction is not a finite number")
    if served.predict_proba is not None and not np.isfinite(np.asarray(served.predict_proba(X), dtype=float)).all():
        raise ValueError("the model's probabilities are not finite numbers")
