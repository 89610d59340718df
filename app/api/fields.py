"""Marshmallow fields for a request's features: checked as whole arrays by :mod:`app.features`."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.features import MAX_BATCH_ROWS, MAX_FEATURES, FeatureError, Features, check_row, check_rows

__all__ = ["MAX_BATCH_ROWS", "MAX_FEATURES", "FeatureRow", "FeatureRows", "features_openapi"]

ROW_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": MAX_FEATURES},
        {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "minProperties": 1,
            "maxProperties": MAX_FEATURES,
        },
    ]
}


class FeatureRow(ma.fields.Field):
    """One sample: a list of numbers, or an object mapping feature names to numbers; loads as :class:`Features`."""

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
        if type(value) is not list:
            raise self.make_error("invalid")
        if not 1 <= len(value) <= MAX_BATCH_ROWS:
            raise self.make_error("length")
        try:  # a body parsed by app.extensions.JsonBodyParser knows whether it holds a JSON boolean
            return check_rows(value, getattr(data, "booleans_possible", True))
        except FeatureError as exc:
            raise ma.ValidationError(exc.messages) from None


def features_openapi(converter: Any, field: ma.fields.Field, **_: Any) -> dict[str, Any]:
    """apispec attribute function: document the feature fields as the JSON they accept."""
    if isinstance(field, FeatureRow):
        return dict(ROW_SCHEMA)
    if isinstance(field, FeatureRows):
        return {"type": "array", "items": ROW_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH_ROWS}
    return {}
