"""Cross-origin requests: answered for the configured origins only, under ``/api/``, by the request pipeline.

A browser sends ``Origin`` with a cross-origin request; when it is one of
``security.cors_origins`` (or they include ``*``) the response allows it and
exposes ``X-Request-ID``, and a preflight (``OPTIONS`` with
``Access-Control-Request-Method``) also learns the methods and headers it may
use. A request without ``Origin`` is not a CORS request and gets nothing but
``Vary: Origin``, which keeps a shared cache from handing its answer to one that is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PREFIX = "/api/"
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
VARY = ("Vary", "Origin")
EXPOSED = ("Access-Control-Expose-Headers", "X-Request-ID")


class CorsPolicy:
    """The configured origins, and the headers a response gets for one request."""

    def __init__(self, origins: Iterable[str]):
        origins = list(origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(o.lower() for o in origins if o != "*")

    def headers(self, path: str, method: str, environ: dict[str, Any]) -> list[tuple[str, str]]:
        if not path.startswith(PREFIX):
            return []
        origin = environ.get("HTTP_ORIGIN")
        if not origin or not (self.any_origin or origin.lower() in self.origins):
            return [VARY]  # origins are schemes and hosts: compared without regard to case
        headers = [("Access-Control-Allow-Origin", origin), EXPOSED, VARY]
        if method == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "").upper() in METHODS:
            headers.append(("Access-Control-Allow-Methods", ", ".join(METHODS)))
            requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
            if requested:  # any header may be sent: allow those asked for
                allowed = sorted({h.strip() for h in requested.split(",") if h.strip()})
                headers.append(("Access-Control-Allow-Headers", ", ".join(allowed)))
        return headers
