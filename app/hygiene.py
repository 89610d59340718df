"""Checks every request body passes before a view sees it: its size and its content type."""

from __future__ import annotations

from typing import Any

from webargs.core import is_json
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header

from app.errors import UnsupportedMediaType, is_v2_path

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Where a ``text/csv`` body (a header row, then rows) is taken as well as JSON.
CSV_PATHS = frozenset({"/api/v1/batch-predict"})
#: Sent with every response: browsers must not guess another type than the one declared.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
#: What a V2 body may be declared as besides JSON: nothing (tritonclient), or the binary extension's type.
V2_MIMETYPES = frozenset({"", "application/octet-stream"})


def check_body(environ: dict[str, Any], max_request_size: int) -> None:
    """413 for a declared length over ``max_request_size``; 415 for a body that is not declared JSON.

    Flask also refuses bodies that grow larger as they are read (``MAX_CONTENT_LENGTH``,
    chunked uploads included); this refuses a declared length before anything is read.
    """
    if environ["REQUEST_METHOD"] not in BODY_METHODS:
        return
    length = _content_length(environ.get("CONTENT_LENGTH"))
    if length > max_request_size:
        raise RequestEntityTooLarge(f"The request body is larger than {max_request_size} bytes.")
    mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0]
    has_body = length > 0 or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "")
    if (has_body or mimetype) and not is_json(mimetype) and not _v2_body(environ, mimetype):
        if mimetype == "text/csv" and environ.get("PATH_INFO") in CSV_PATHS:
            return
        raise UnsupportedMediaType(
            f"Send a JSON body with 'Content-Type: application/json' (got '{mimetype or 'no content type'}')."
        )


def _v2_body(environ: dict[str, Any], mimetype: str) -> bool:
    """The Open Inference Protocol's bodies are JSON by definition, its clients may not say so, and its
    binary extension appends raw tensor bytes (:mod:`app.api.v2.framing`)."""
    return mimetype in V2_MIMETYPES and is_v2_path(environ.get("PATH_INFO", ""))


def _content_length(value: str | None) -> int:
    try:
        return max(0, int(value)) if value else 0
    except ValueError:
        return 0
