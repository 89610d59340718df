"""Small validation pieces shared by the config, sidecar and request schemas."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from marshmallow import validate

#: Model names, aliases and the default model: safe in URLs, file names and logs.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
NAME_MESSAGE = "Must be 1-64 letters, digits, '_' or '-'."
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


class StrictBoolean(ma.fields.Boolean):
    """JSON ``true``/``false`` only: not 0/1 (equal to False/True in Python) and not strings."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
