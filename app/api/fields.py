"""Marshmallow fields shared by the request schemas."""

from __future__ import annotations

import math
from typing import Any

import marshmallow as ma

MAX_FEATURES = 1000
MAX_BATCH_ROWS = 1000


def _check_number(value: Any, where: str) -> float:
    # bool is an int in Python; JSON true/false are not features.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "null" if value is None else type(value).__name__
        kind = {"str": "string", "list": "array", "dict": "object", "bool": "boolean"}.get(kind, kind)
        raise ma.ValidationError(f"{where} must be a number, got {kind}.")
    if isinstance(value, int):
        try:  # a 400-digit JSON integer is a valid int but no float64
            float(value)
        except OverflowError:
            raise ma.ValidationError(f"{where} must be a finite number, got an integer beyond float64.") from None
    elif not math.isfinite(value):
        raise ma.ValidationError(f"{where} must be a finite number, got {value}.")
    return value


class FeatureRow(ma.fields.Field):
    """One sample: a list of numbers, or an object mapping feature names to numbers."""

    default_error_messages = {
        "invalid": "Must be a list of numbers or an object of named numbers.",
        "empty": "Must contain at least one feature.",
        "too_long": f"Must contain at most {MAX_FEATURES} features.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list):
            items = enumerate(value)
            where = "Feature {}"
        elif isinstance(value, dict):
            items = value.items()
            where = "Feature '{}'"
        else:
            raise self.make_error("invalid")
        if not value:
            raise self.make_error("empty")
        if len(value) > MAX_FEATURES:
            raise self.make_error("too_long")
        for key, item in items:
            _check_number(item, where.format(key))
        return value


def feature_row_openapi(converter: Any, field: ma.fields.Field, **_: Any) -> dict[str, Any]:
    """apispec attribute function: document :class:`FeatureRow` as list-or-object of numbers."""
    if isinstance(field, FeatureRow):
        return {
            "oneOf": [
                {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": MAX_FEATURES},
                {"type": "object", "additionalProperties": {"type": "number"}, "minProperties": 1},
            ]
        }
    return {}
