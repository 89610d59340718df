"""What every request gets around its view, as one ``before_request`` and one ``after_request`` function.

Before the view: the timer of the request metrics, the request id, the
models' first load, the body's size and content type, and the access check
(credentials, role, rate limit). After it, on every response, errors
included: the request id, ``nosniff``, the rate limit's headers, CORS, and
the request metrics. Each step is a function of the module that owns it; this
module orders them, so that a request pays for two hooks rather than ten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, g, request
from werkzeug.wrappers import Response

from app.cors import CorsPolicy
from app.hygiene import NOSNIFF, check_body
from app.metrics import Metrics, endpoint_label
from app.observability import REQUEST_ID_HEADER, request_id_from
from app.registry import ModelRegistry
from app.security.access import AccessControl


@dataclass
class RequestPipeline:
    registry: ModelRegistry
    access: AccessControl
    max_request_size: int
    metrics: Metrics | None = None
    #: None when ``security.enable_cors`` is off.
    cors: CorsPolicy | None = None

    def before(self) -> None:
        environ = request.environ
        g.started = time.perf_counter()
        g.request_id = request_id_from(environ)
        self.registry.warm()
        check_body(environ, self.max_request_size)
        identity, g.rate_limit = self.access.check(request.endpoint, environ["REQUEST_METHOD"], environ)
        g.identity = identity
        g.user_id = identity.user_id if identity is not None else None

    def after(self, response: Response) -> Response:
        added = [(REQUEST_ID_HEADER, g.get("request_id") or "-")]
        if NOSNIFF[0] not in response.headers:
            added.append(NOSNIFF)
        limit = g.get("rate_limit")
        if limit is not None:
            added += limit.headers()
        if self.cors is not None:
            environ = request.environ
            added += self.cors.headers(environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"], environ)
        response.headers.extend(added)  # none of these is set before: views and errors leave them to here
        if self.metrics is not None:
            started = g.get("started")
            seconds = time.perf_counter() - started if started is not None else None
            self.metrics.observe_request(request.method, endpoint_label(), response.status_code, seconds)
        return response


def register_pipeline(app: Flask, pipeline: RequestPipeline) -> None:
    """Run ``pipeline`` around every request (the application's only request hooks)."""
    app.before_request(pipeline.before)
    app.after_request(pipeline.after)
