"""Checks every request passes before a view sees it: size and content type."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.errors import UnsupportedMediaType

BODY_METHODS = {"POST", "PUT", "PATCH"}


def register_request_checks(app: Flask, max_request_size: int) -> None:
    # Flask refuses larger bodies as they are read (chunked uploads too); the
    # check below refuses a declared Content-Length before reading anything.
    app.config["MAX_CONTENT_LENGTH"] = max_request_size

    @app.before_request
    def _check_body() -> None:
        if request.method not in BODY_METHODS:
            return
        if request.content_length is not None and request.content_length > max_request_size:
            raise RequestEntityTooLarge(f"The request body is larger than {max_request_size} bytes.")
        has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "")
        if (has_body or request.mimetype) and not request.is_json:
            raise UnsupportedMediaType(
                f"Send a JSON body with 'Content-Type: application/json' "
                f"(got '{request.mimetype or 'no content type'}')."
            )

    @app.after_request
    def _harden(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
