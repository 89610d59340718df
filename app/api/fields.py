"""Marshmallow fields for a request's features: checked as whole arrays by :mod:`app.features`.

Each input format of the ecosystem loads as the same :class:`~app.features.Features`:
``features`` (a row, or rows), ``instances`` (TF-Serving, KServe v1),
MLflow's ``dataframe_records`` and ``dataframe_split``, and a ``text/csv``
body (:class:`CsvBody`, read by :class:`app.extensions.JsonBodyParser`).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.features import MAX_BATCH_ROWS, MAX_FEATURES, FeatureError, Features, check_row, check_rows

__all__ = [
    "MAX_BATCH_ROWS",
    "MAX_FEATURES",
    "CsvBody",
    "DataFrameSplit",
    "FeatureRow",
    "FeatureRows",
    "features_openapi",
]

VALUE_SCHEMA: dict[str, Any] = {"type": ["number", "string", "boolean", "null"]}
ROW_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": VALUE_SCHEMA, "minItems": 1, "maxItems": MAX_FEATURES},
        {
            "type": "object",
            "additionalProperties": VALUE_SCHEMA,
            "minProperties": 1,
            "maxProperties": MAX_FEATURES,
        },
    ]
}
SPLIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["columns", "data"],
    "properties": {
        "columns": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_FEATURES},
        "data": {"type": "array", "items": {"type": "array", "items": VALUE_SCHEMA}, "minItems": 1},
        "index": {"type": "array"},
    },
}


class CsvBody(list):
    """The rows of a ``text/csv`` body, one object per line keyed by the header, every value the cell's text."""


class FeatureRow(ma.fields.Field):
    """One sample: a list of values, or an object mapping feature names to values; loads as :class:`Features`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Features:
        try:
            return check_row(value)
        except FeatureError as exc:
            raise ma.ValidationError(exc.messages) from None


class FeatureRows(ma.fields.Field):
    """1 to :data:`MAX_BATCH_ROWS` samples, each a :class:`FeatureRow`; loads as one :class:`Features`."""

    default_error_messages = {
        "invalid": "Not a valid list.",
        "length": f"Length must be between 1 and {MAX_BATCH_ROWS}.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Features:
        if type(value) is CsvBody:
            if not 1 <= len(value) <= MAX_BATCH_ROWS:
                raise self.make_error("length")
            return Features(rows=tuple(value), text=True)
        if type(value) is not list:
            raise self.make_error("invalid")
        if not 1 <= len(value) <= MAX_BATCH_ROWS:
            raise self.make_error("length")
        try:  # a body parsed by app.extensions.JsonBodyParser knows whether it holds a JSON boolean
            return check_rows(value, getattr(data, "booleans_possible", True), getattr(data, "numbers_finite", False))
        except FeatureError as exc:
            raise ma.ValidationError(exc.messages) from None


class DataFrameSplit(ma.fields.Field):
    """MLflow's ``dataframe_split``: ``columns`` and ``data`` (rows of values); loads as named :class:`Features`."""

    default_error_messages = {
        "invalid": "Must be an object with 'columns' (names) and 'data' (rows of values).",
        "length": f"'data' must hold 1 to {MAX_BATCH_ROWS} rows.",
        "columns": f"'columns' must be 1 to {MAX_FEATURES} distinct names.",
        "width": "row {row} has {found} values for {width} columns.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Features:
        if type(value) is not dict or type(value.get("columns")) is not list or type(value.get("data")) is not list:
            raise self.make_error("invalid")
        if set(value) - {"columns", "data", "index"}:
            raise self.make_error("invalid")
        columns, rows = value["columns"], value["data"]
        if not all(type(c) is str for c in columns):  # first: only strings can be counted as distinct
            raise self.make_error("columns")
        if not 0 < len(columns) <= MAX_FEATURES or len(set(columns)) != len(columns):
            raise self.make_error("columns")
        if not 1 <= len(rows) <= MAX_BATCH_ROWS:
            raise self.make_error("length")
        for index, row in enumerate(rows):
            if type(row) is not list or len(row) != len(columns):
                found = len(row) if type(row) is list else "no list of"
                raise self.make_error("width", row=index, found=found, width=len(columns))
        try:
            return check_rows([dict(zip(columns, row, strict=True)) for row in rows])
        except FeatureError as exc:
            raise ma.ValidationError(exc.messages) from None


def features_openapi(converter: Any, field: ma.fields.Field, **_: Any) -> dict[str, Any]:
    """apispec attribute function: document the feature fields as the JSON they accept."""
    if isinstance(field, FeatureRow):
        return dict(ROW_SCHEMA)
    if isinstance(field, FeatureRows):
        return {"type": "array", "items": ROW_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH_ROWS}
    if isinstance(field, DataFrameSplit):
        return dict(SPLIT_SCHEMA)
    return {}
