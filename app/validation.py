"""Small validation pieces shared by the config, sidecar and request schemas."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from marshmallow import validate
from werkzeug.routing import BaseConverter

#: Names ``/api/v1/models/...`` uses for its own resources: no model or alias may be called so.
RESERVED_NAMES = ("load", "trust")
#: Model names, aliases and the default model: safe in URLs, file names and logs.
NAME_PATTERN = r"^(?!(?:" + "|".join(RESERVED_NAMES) + r")$)[a-zA-Z0-9_-]{1,64}$"
NAME_MESSAGE = "Must be 1-64 letters, digits, '_' or '-', and not " + " or ".join(map(repr, RESERVED_NAMES)) + "."
_NAME = re.compile(NAME_PATTERN)


class FullMatch(validate.Regexp):
    """``Regexp`` that matches the whole string: ``$`` alone lets a trailing newline through.

    Still a ``Regexp``, so apispec documents the pattern in the OpenAPI document.
    """

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


def model_name_validator(message: str = NAME_MESSAGE) -> FullMatch:
    return FullMatch(NAME_PATTERN, error=message)


def is_valid_name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


class NameConverter(BaseConverter):
    """A model name or alias in a URL: any path segment but the reserved names.

    ``/models/load`` is the load endpoint, so ``DELETE /models/load`` is a method
    that resource does not have (405), not the deletion of a model called "load".
    Other names that break :data:`NAME_PATTERN` reach the view, which answers 422;
    the OpenAPI document shows the pattern (:func:`name_converter_openapi`).
    """

    regex = r"(?!(?:" + "|".join(RESERVED_NAMES) + r")(?:/|$))[^/]+"


def name_converter_openapi(converter: BaseConverter) -> dict[str, Any]:
    """flask-smorest's description of a :class:`NameConverter` parameter."""
    return {"type": "string", "pattern": NAME_PATTERN}


class JsonInteger(ma.fields.Integer):
    """A JSON integer: ``1`` or ``1.0`` (the same number to JSON), not ``1.5``, a string or a boolean."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(ma.fields.Boolean):
    """JSON ``true``/``false`` only: not 0/1 (equal to False/True in Python) and not strings."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
