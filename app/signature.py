"""A model's signature: the columns it takes, their types, known categories, and whether null is accepted.

Built once per loaded version from the model itself (its adapter's
:class:`~app.adapters.ModelDescription`) or from the sidecar's ``signature``
(which wins, column by column). What the model *accepts* is then asked of the
model, not guessed: when it loads, :func:`probe` predicts a typical row, that
row with nulls, and with an unknown category, and records which it refuses
(``nullable``, ``closed``). Requests are checked against the result by
:mod:`app.model_input`; ``GET /api/v1/models/{name}/info`` shows it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.adapters import Column, ModelDescription

TYPES = ("number", "string", "boolean")
DTYPES = {"number": "float64", "string": "object", "boolean": "bool"}
#: A category no model was trained on: the probe of whether unknown categories are refused.
UNKNOWN_CATEGORY = "\x00modelserve-unknown"


@dataclass(frozen=True, slots=True)
class Field:
    """One input column as requests are checked against it (``name`` None for an unnamed matrix column)."""

    name: str | None
    type: str = "number"
    dtype: str = "float64"
    categories: tuple[Any, ...] | None = None
    nullable: bool = False
    #: Only ``categories`` are accepted: the model fails on any other value.
    closed: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.categories is not None:
            out["categories"] = list(self.categories)
            out["closed"] = self.closed
        return out


@dataclass(frozen=True)
class Signature:
    """The model's input: ``fields`` in order; ``frame`` when it takes a DataFrame rather than a float64 matrix."""

    fields: tuple[Field, ...]
    frame: bool = False
    source: str = "model"
    #: The column names, when every column has one (derived once: the hot path reads them per request).
    names: tuple[str, ...] | None = field(init=False, default=None)
    #: Every column takes null (a matrix model that takes NaN).
    nullable: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        names = tuple(f.name for f in self.fields)
        object.__setattr__(self, "names", names if names and None not in names else None)
        object.__setattr__(self, "nullable", bool(self.fields) and all(f.nullable for f in self.fields))

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": "dataframe" if self.frame else "array",
            "source": self.source,
            "columns": [f.as_dict() for f in self.fields],
        }


def build(description: ModelDescription, metadata: Mapping[str, Any]) -> Signature:
    """The signature the model and its sidecar describe, before :func:`probe` asks the model what it accepts."""
    declared = metadata.get("signature")
    columns = getattr(description, "columns", None)  # a third-party description may not have it
    described = {c.name: c for c in columns or ()}
    if declared:
        by_name = {item["name"]: item for item in declared}
        if columns is not None:  # the model's columns, those the sidecar names as it says
            unknown = [name for name in by_name if name not in described]
            if unknown:
                raise ValueError(f"the sidecar's signature names columns the model does not have: {', '.join(unknown)}")
            fields = tuple(_declared_field(by_name[c.name], c) if c.name in by_name else _field(c) for c in columns)
        else:
            fields = tuple(_declared_field(item, None) for item in declared)
        frame = columns is not None or any(f.type != "number" for f in fields)
        return Signature(fields, frame, "mlflow" if metadata.get("mlflow") else "metadata")
    if columns is not None:
        return Signature(tuple(_field(c) for c in columns), True)
    names = metadata.get("feature_names") or description.feature_names
    count = description.n_features or (len(names) if names else 0)
    return Signature(tuple(Field(str(names[i]) if names else None) for i in range(count)))


def _field(column: Column) -> Field:
    return Field(column.name, column.type, column.dtype, column.categories)


def _declared_field(item: Mapping[str, Any], column: Column | None) -> Field:
    kind = item.get("type", column.type if column else "number")
    categories = item.get("categories")
    if categories is None and column is not None:
        categories = column.categories
    dtype = item.get("dtype") or (column.dtype if column else DTYPES[kind])
    declared = Field(item["name"], kind, dtype, tuple(categories) if categories is not None else None)
    return replace(declared, nullable=bool(item["nullable"])) if "nullable" in item else declared


def example_row(signature: Signature) -> list[Any]:
    """A row every column of which holds a value the model was trained on (the first category, zero, false)."""
    return [_example(f) for f in signature.fields]


def _example(column: Field) -> Any:
    if column.type == "string":
        return column.categories[0] if column.categories else "a"
    if column.type == "boolean":
        return False
    return 0.0


def probe(signature: Signature, accepts: Callable[[list[Any]], bool], declared_nulls: Sequence[str] = ()) -> Signature:
    """Ask the model which nulls and unknown categories it takes; ``accepts(row)`` predicts one row.

    ``declared_nulls`` are columns whose ``nullable`` the sidecar set: it is kept.
    One all-null row first, so a model that takes nulls everywhere costs one call.
    Declared ``nullable`` columns keep the sidecar's word (probing them anyway
    would only tell what the sidecar already decided).
    """
    base = example_row(signature)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an encoder told to ignore unknown categories warns about them
        all_null = accepts([None] * len(base)) if base else False
        fields = []
        for j, column in enumerate(signature.fields):
            if column.name not in declared_nulls:
                # A matrix model takes NaN everywhere or nowhere: no call per column for a wide one.
                each = signature.frame and not all_null and accepts(_with(base, j, None))
                column = replace(column, nullable=all_null or each)
            if column.type == "string" and column.categories:
                column = replace(column, closed=not accepts(_with(base, j, UNKNOWN_CATEGORY)))
            fields.append(column)
    return replace(signature, fields=tuple(fields))


def _with(row: list[Any], index: int, value: Any) -> list[Any]:
    changed = list(row)
    changed[index] = value
    return changed
