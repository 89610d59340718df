"""Request ids, JSON-lines logging, and the one place a prediction is observed.

Every response carries ``X-Request-ID`` (the client's, when well-formed, else
a new one) and every log line written while handling a request carries it too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from werkzeug.wrappers import Response

#: Where :func:`app.metrics.register_metrics` keeps the application's metrics (absent when disabled).
METRICS_EXTENSION = "modelserve_metrics"
REQUEST_ID_HEADER = "X-Request-ID"
WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, message, request_id, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Send the ``app`` loggers to stderr as JSON lines (or plain text) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    logger = logging.getLogger("app")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def register_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if WELL_FORMED_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "-")
        return response


prediction_log = logging.getLogger("app.predictions")


@dataclass
class PredictionTiming:
    seconds: float = 0.0


@contextmanager
def observe_prediction(model_name: str, rows: int, features: int) -> Iterator[PredictionTiming]:
    """Time the model call in the ``with`` block; count it in the metrics and log "Prediction completed".

    A model that raises is counted as a failed prediction (``status="error"``)
    and the exception goes on to the error handler.
    """
    timing = PredictionTiming()
    metrics = current_app.extensions.get(METRICS_EXTENSION) if has_app_context() else None
    started = time.perf_counter()
    try:
        yield timing
    except Exception:
        timing.seconds = time.perf_counter() - started
        if metrics is not None:
            metrics.observe_prediction(model_name, timing.seconds, rows, ok=False)
        raise
    timing.seconds = time.perf_counter() - started
    if metrics is not None:
        metrics.observe_prediction(model_name, timing.seconds, rows, ok=True)
    fields: dict[str, Any] = {
        "model_name": model_name,
        "prediction_time": timing.seconds,
        "features_count": features,
        "user_id": g.get("user_id") if has_request_context() else None,
    }
    if rows != 1:
        fields["rows"] = rows
    prediction_log.info("Prediction completed", extra=fields)
