"""The Api class every blueprint registers with, and access to per-worker services.

An Api is created per application by the factory (flask-smorest keeps one
spec per Api instance, and tests build many applications).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, InternalServerError

from app.errors import ErrorSchema


class ModelServeApi(Api):
    """flask-smorest's Api with our error body: its own shape plus ``request_id``."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
        if isinstance(error, InternalServerError):
            # Flask has logged the traceback (logger "app", with the request id); the client gets none of it.
            error = InternalServerError()
        payload, status, headers = super().handle_http_exception(error)
        if "message" not in payload:
            payload["message"] = _summary(payload.get("errors")) or error.description or error.name
        payload["request_id"] = g.get("request_id", "-")
        return payload, status, headers


def current_actor() -> str:
    """Who is asking, for the audit trail: the authenticated user, else "anonymous"."""
    return g.get("user_id") or "anonymous"


def services() -> Any:
    """The per-worker services the factory built (registry, plugins, config)."""
    return current_app.extensions["modelserve"]


def _summary(errors: Any, prefix: str = "") -> str | None:
    """First validation message with its location, e.g. ``json.features: Not a valid list.``."""
    if isinstance(errors, dict) and errors:
        key, inner = next(iter(errors.items()))
        return _summary(inner, f"{prefix}{key}.")
    if isinstance(errors, list) and errors:
        return _summary(errors[0], prefix)
    if isinstance(errors, str):
        return f"{prefix.rstrip('.')}: {errors}" if prefix else errors
    return None
