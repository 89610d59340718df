"""The least a Python model server does for one row: a raw WSGI callable, orjson in, NumPy, orjson out.

No framework, API key, rate limit, metrics, logs, request id, registry or
checks: the prediction itself on the same gunicorn settings as the HTTP
floor. It answers modelserve's single-row shape for the benchmark row.
``BARE_MODEL`` names the joblib file (the benchmark's iris LogisticRegression);
:mod:`bench.minimal_flask` serves the same prediction through one Flask route.
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


def predict_body(body: bytes) -> bytes:
    """The single-row answer for a ``{"features": [...]}`` body."""
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
    return orjson.dumps(answer)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    data = predict_body(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
