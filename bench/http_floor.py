"""The HTTP floor: a WSGI app that reads the body and answers a constant prediction-shaped JSON.

Served by gunicorn with modelserve's worker class and settings, it is what the
HTTP stack alone costs; modelserve's throughput is reported as a fraction of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = (
    b'{"model_name":"iris_lr","served_model":"iris_lr","model_version":1,"prediction":0,'
    b'"prediction_label":"setosa","probabilities":[0.9817,0.0183,0.0],"prediction_time":0.00001,'
    b'"timestamp":"2026-11-27T22:04:03.879Z"}\n'
)
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", HEADERS)
    return [BODY]
