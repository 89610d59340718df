"""Per-request costs kept small without changing what is counted or written."""

from __future__ import annotations

import io
import json
import logging
import threading

from tests.factories import KNOWN_ROWS

ROW = KNOWN_ROWS["setosa"]


def test_memory_rate_limits_start_no_thread_per_hit(make_app, monkeypatch):
    app = make_app(security={"rate_limits": {"predict": "1000/minute"}})
    client = app.test_client()
    assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self.name))
    for body in ({"features": ROW}, {"features": "bad"}):  # the fast lane and Flask both count
        for _ in range(20):
            client.post("/api/v1/predict", json=body)
    assert started == []
    response = client.post("/api/v1/predict", json={"features": ROW})
    assert response.headers["X-RateLimit-Remaining"] == str(1000 - 42)


def test_expired_memory_counters_are_swept_inline(make_app):
    storage = make_app().extensions["modelserve_limiter"].storage
    storage.incr("old", 60)
    storage.expirations["old"] = 0.0  # its window ended long ago
    storage._next_sweep = 0.0
    storage.incr("new", 60)
    assert "old" not in storage.storage and storage.get("new") == 1


def test_direct_json_lines_are_what_the_formatter_writes(app):
    """The prediction line written straight to the handler equals the LogRecord path's line."""
    from app.observability import JsonFormatter, RequestIdFilter, log_json_line

    logger = logging.getLogger("app")
    handler = next(h for h in logger.handlers if getattr(h, "modelserve_json", False))
    stream = io.StringIO()
    original, others = handler.stream, list(logger.handlers)
    handler.setStream(stream)
    logger.handlers[:] = [handler]  # as under gunicorn: pytest adds its capture handlers here
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        fields = {"model_name": "m", "prediction_time": 0.001, "features_count": 4, "user_id": None}
        log_json_line(logging.getLogger("app.predictions"), "Prediction completed", dict(fields))
        reference = logging.StreamHandler(io.StringIO())
        reference.addFilter(RequestIdFilter())
        reference.setFormatter(JsonFormatter())
        record = logging.getLogger("app.predictions").makeRecord(
            "app.predictions", logging.INFO, __file__, 0, "Prediction completed", (), None, extra=dict(fields)
        )
        reference.handle(record)
    finally:
        handler.setStream(original)
        logger.handlers[:] = others
        logger.setLevel(level)
    direct, through_logging = (json.loads(s.getvalue()) for s in (stream, reference.stream))
    direct.pop("timestamp"), through_logging.pop("timestamp")
    assert direct == through_logging


def test_other_handlers_get_log_records(app):
    from app.observability import log_json_line

    logger = logging.getLogger("app")
    extra = logging.StreamHandler(io.StringIO())
    logger.addHandler(extra)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_json_line(logging.getLogger("app.predictions"), "Prediction completed", {"model_name": "m"})
    finally:
        logger.removeHandler(extra)
        logger.setLevel(level)
    assert extra.stream.getvalue() == "Prediction completed\n"
