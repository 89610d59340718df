"""The least a Python model server does for one row: orjson in, NumPy LogisticRegression, orjson out.

No API key, rate limit, metrics, logs, request id, registry or checks: the
prediction itself on the same gunicorn settings as the HTTP floor. Beside
the floor it shows what any Python model server pays before its production
stack, and so how much of the floor the issue's 0.75× target leaves for
that stack. It answers modelserve's single-row shape for the benchmark row.
``BARE_MODEL`` names the joblib file (the benchmark's iris LogisticRegression);
``BARE_API_HEADERS=1`` adds the response headers modelserve's API promises
(model, rate limit, CORS, ``nosniff``, a fresh request id), with nothing behind them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import joblib
import numpy as np
import orjson

from app.demo_models import LABELS

_model = joblib.load(os.environ["BARE_MODEL"])
_coef_t = _model.coef_.T
_intercept = _model.intercept_
_HEADERS = [("Content-Type", "application/json")]
#: What modelserve sends besides them, for the benchmark's configuration (values of the same length).
_API_HEADERS = [
    ("X-Model-Name", "iris_lr"),
    ("X-Model-Version", "1"),
    ("X-RateLimit-Limit", "100000000"),
    ("X-RateLimit-Remaining", "99999998"),
    ("X-RateLimit-Reset", "1795836780"),
    ("Retry-After", "60"),
    ("Access-Control-Allow-Origin", "http://localhost:3000"),
    ("Access-Control-Expose-Headers", "X-Request-ID"),
    ("X-Content-Type-Options", "nosniff"),
]
_WITH_API_HEADERS = os.environ.get("BARE_API_HEADERS") == "1"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    started = time.perf_counter()
    scores = np.asarray(orjson.loads(body)["features"], dtype=np.float64) @ _coef_t + _intercept
    best = int(scores.argmax())
    scores = np.exp(scores - scores[best])
    scores /= scores.sum()
    answer = {
        "model_name": "iris_lr",
        "model_version": 1,
        "prediction": best,
        "prediction_label": LABELS[best],
        "prediction_time": time.perf_counter() - started,
        "probabilities": scores.tolist(),
        "served_model": "iris_lr",
        "timestamp": time.time(),
    }
    data = orjson.dumps(answer)
    headers = [*_HEADERS, ("Content-Length", str(len(data)))]
    if _WITH_API_HEADERS:
        headers += [*_API_HEADERS, ("X-Request-ID", os.urandom(16).hex())]
    start_response("200 OK", headers)
    return [data]
