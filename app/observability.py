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
from typing import TYPE_CHECKING, Any

import orjson
from flask import g, has_request_context

if TYPE_CHECKING:
    from app.metrics import Metrics

REQUEST_ID_HEADER = "X-Request-ID"
WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def iso_timestamp(seconds: float) -> str:
    """``2026-11-27T22:04:03.879Z`` for a ``time.time()`` value; the whole second's text is cached."""
    whole = int(seconds)
    cached_second, text = _second_text
    if whole != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second_text[:] = (whole, text)  # one list, replaced whole: threads see one second or the other
    return f"{text}.{int((seconds - whole) * 1000):03d}Z"


_second_text: list[Any] = [None, ""]


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex`` without building a UUID."""
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
        fields = vars(record)
        for key in fields.keys() - _STANDARD_ATTRS:
            if key[0] != "_":
                entry[key] = fields[key]
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
    """Send the ``app`` loggers to stderr as JSON lines (or plain text) at ``level``.

    No format prints a record's thread or process names, so logging is told not
    to look them up for each record (its documented switches for that).
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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


def request_id_from(environ: dict[str, Any]) -> str:
    """The client's ``X-Request-ID`` when well-formed, else a new id."""
    incoming = environ.get("HTTP_X_REQUEST_ID")
    return incoming if incoming and WELL_FORMED_ID.match(incoming) else new_request_id()


prediction_log = logging.getLogger("app.predictions")


def record_prediction(
    model_name: str,
    seconds: float,
    shape: tuple[int, ...],
    ok: bool,
    metrics: Metrics | None = None,
    user_id: str | None = None,
) -> None:
    """Count a model call of ``shape`` (rows, features) in ``metrics``; log "Prediction completed" if it succeeded.

    A model that raised is counted as a failed prediction (``status="error"``).
    The log line carries the request id of the request being answered, if any.
    """
    rows, features = shape
    if metrics is not None:
        metrics.observe_prediction(model_name, seconds, rows, ok=ok)
    if not ok or not prediction_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "model_name": model_name,
        "prediction_time": seconds,
        "features_count": features,
        "user_id": user_id,
    }
    if rows != 1:
        fields["rows"] = rows
    # A record made here, not by Logger.info: no format prints the caller's file and line, which
    # Logger.info would look up by walking the stack for every prediction.
    logger = prediction_log
    logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, "Prediction completed", None, None, extra=fields))
