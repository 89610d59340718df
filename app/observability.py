"""Request ids, JSON-lines logging, and the one place a prediction is observed.

Every response carries ``X-Request-ID`` (the client's, when well-formed, else
a new one) and every log line written while handling a request carries it too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

import orjson
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from werkzeug.wrappers import Response

#: Where :func:`app.metrics.register_metrics` keeps the application's metrics (absent when disabled).
METRICS_EXTENSION = "modelserve_metrics"
REQUEST_ID_HEADER = "X-Request-ID"
WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def iso_timestamp(seconds: float) -> str:
    """``2026-11-27T22:04:03.879Z`` for a ``time.time()`` value (every request writes two or three)."""
    whole = int(seconds)
    cached_second, text = _second_text
    if whole != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second_text[:] = (whole, text)  # one list, replaced whole: threads see one second or the other
    return f"{text}.{int((seconds - whole) * 1000):03d}Z"


_second_text: list[Any] = [None, ""]


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex`` without building a UUID (a quarter of the time)."""
    return os.urandom(16).hex()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, message, request_id, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": iso_timestamp(record.created),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key[0] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_line(entry)


def json_line(entry: dict[str, Any]) -> str:
    """One log line: orjson (what it cannot encode, as text), else the standard library for odd keys."""
    try:
        return orjson.dumps(entry, default=str).decode()
    except TypeError:  # keys that are not strings, integers beyond 64 bits
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
    handler.modelserve_json = fmt == "json"  # type: ignore[attr-defined]  # see log_json_line
    logger = logging.getLogger("app")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def register_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if WELL_FORMED_ID.match(incoming) else new_request_id()

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "-")
        return response


prediction_log = logging.getLogger("app.predictions")


#: "Take it from the Flask request being handled" (the default of :func:`record_prediction`).
FROM_CONTEXT: Any = object()


def record_prediction(
    model_name: str,
    seconds: float,
    shape: tuple[int, ...],
    ok: bool,
    metrics: Any = FROM_CONTEXT,
    user_id: Any = FROM_CONTEXT,
    request_id: str | None = None,
) -> None:
    """Count a model call of ``shape`` (rows, features) in the metrics; log "Prediction completed" if it succeeded.

    A model that raised is counted as a failed prediction (``status="error"``).
    ``metrics``, ``user_id`` and ``request_id`` default to the current
    application's and request's.
    """
    if metrics is FROM_CONTEXT:
        metrics = current_app.extensions.get(METRICS_EXTENSION) if has_app_context() else None
    if user_id is FROM_CONTEXT:
        user_id = g.get("user_id") if has_request_context() else None
    rows, features = shape
    if metrics is not None:
        metrics.observe_prediction(model_name, seconds, rows, ok=ok)
    if not ok:
        return
    fields: dict[str, Any] = {
        "model_name": model_name,
        "prediction_time": seconds,
        "features_count": features,
        "user_id": user_id,
    }
    if rows != 1:
        fields["rows"] = rows
    if request_id is not None:
        fields["request_id"] = request_id
    log_json_line(prediction_log, "Prediction completed", fields)


def log_json_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """``logger.info(message, extra=fields)``, for the lines every request writes.

    When the only handler the record would reach is the JSON handler that
    :func:`configure_logging` installed, the line it would print is written
    straight to its stream: the same JSON object, without building a LogRecord
    and walking the stack for the caller's file and line, which no format here
    prints. Any other set-up (more handlers, filters, text format) gets the record.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _only_json_handler(logger)
    if handler is None:
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, (), None, extra=fields))
        return
    entry = {"timestamp": iso_timestamp(time.time()), "level": "INFO", "message": message, "logger": logger.name}
    entry.update(fields)
    if "request_id" not in entry:
        entry["request_id"] = g.get("request_id") if has_request_context() else None
    line = json_line(entry) + handler.terminator
    with handler.lock:
        handler.stream.write(line)
        handler.stream.flush()


def _only_json_handler(logger: logging.Logger) -> logging.StreamHandler | None:
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    if parent is None or parent.propagate or parent.filters or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if not getattr(handler, "modelserve_json", False) or handler.level > logging.INFO:
        return None
    if len(handler.filters) != 1 or type(handler.filters[0]) is not RequestIdFilter:
        return None
    return handler  # type: ignore[return-value]
