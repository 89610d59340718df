"""One error shape for every response: flask-smorest's body plus ``request_id``.

``{"code": 422, "status": "Unprocessable Entity", "message": "...",
"errors": {...}, "request_id": "..."}``. Errors raised by our code are
:class:`ApiError` subclasses carrying their status; Flask/werkzeug errors
(404 for unknown URLs, 405, 413) and unexpected exceptions are turned into
the same shape by :meth:`app.extensions.ModelServeApi.handle_http_exception`.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from werkzeug.exceptions import HTTPException


class ErrorSchema(ma.Schema):
    """The body of every error response (documentation only: never used to dump)."""

    code = ma.fields.Integer(required=True, metadata={"description": "HTTP status code", "example": 422})
    status = ma.fields.String(
        required=True, metadata={"description": "HTTP status name", "example": "Unprocessable Entity"}
    )
    message = ma.fields.String(
        required=True,
        metadata={"description": "What went wrong, for a person", "example": "Expected 4 features, got 3."},
    )
    errors = ma.fields.Dict(
        metadata={
            "description": "Per-field details, when the request failed validation",
            "example": {"json": {"features": ["Expected 4 features, got 3."]}},
        }
    )
    request_id = ma.fields.String(
        required=True,
        metadata={"description": "The X-Request-ID of the request, to find it in the logs"},
    )


def is_v2_path(path: str) -> bool:
    """A route of the Open Inference Protocol (:mod:`app.api.v2`), whose errors are ``{"error": "..."}``."""
    return path == "/v2" or path.startswith("/v2/")


class ApiError(HTTPException):
    """Base of the errors our own code raises; ``code`` is the HTTP status."""

    code = 500

    def __init__(self, message: str, errors: dict[str, Any] | None = None):
        super().__init__(description=message)
        self.data: dict[str, Any] = {"message": message}
        if errors:
            self.data["errors"] = errors


class BadRequest(ApiError):
    code = 400


class NotFound(ApiError):
    code = 404


class Conflict(ApiError):
    code = 409


class UnsupportedMediaType(ApiError):
    code = 415


class ValidationFailed(ApiError):
    """The request was well-formed but its content cannot be used (422)."""

    code = 422


class ServiceUnavailable(ApiError):
    """The server cannot serve yet (readiness): the message says why."""

    code = 503


class ModelNotFound(NotFound):
    def __init__(self, name: str):
        super().__init__(f"Model '{name}' is not available. GET /api/v1/models lists the models.")


class InvalidFeatures(ValidationFailed):
    """Features that the model cannot take; reported under ``errors.json.features``."""

    def __init__(self, message: str, field: str = "features"):
        super().__init__(message, errors={"json": {field: [message]}})


class ModelLoadError(ValidationFailed):
    """A model file that exists but cannot be loaded or served."""


class ModelPathError(BadRequest):
    """A model path the server refuses to read (outside the model directory, not a file)."""


class ModelLimitReached(Conflict):
    pass


class ConfigError(Exception):
    """Invalid configuration; ``str()`` is the one line to show the operator.

    Here rather than in :mod:`app.config`, so that the config sections
    (:mod:`app.security.settings`) can raise it without importing the loader
    that imports them. ``from app.config import ConfigError`` still works.
    """
