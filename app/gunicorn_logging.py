"""gunicorn's own logs (access and errors) as the same JSON lines as the application's."""

from __future__ import annotations

import logging
import time
from typing import Any

from gunicorn.glogging import Logger

from app.observability import JsonFormatter, iso_timestamp, json_line


class JsonLogger(Logger):
    """Access lines carry method, path, status, duration and the response's ``X-Request-ID``."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        request_id = next((v for k, v in resp.headers or () if k.lower() == "x-request-id"), None)
        entry = {
            "timestamp": iso_timestamp(time.time()),
            "level": "INFO",
            "message": "request",
            "logger": "gunicorn.access",
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(str(resp.status).split()[0]) if resp.status else None,
            "duration_s": request_time.total_seconds(),
            "bytes": getattr(resp, "sent", None),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "request_id": request_id,
        }
        log = self.access_log
        try:
            if not log.isEnabledFor(logging.INFO):
                return
            line = json_line(entry)
            handler = log.handlers[0] if len(log.handlers) == 1 and not log.filters else None
            if type(handler) is logging.StreamHandler and not handler.filters and _message_only(handler):
                with handler.lock:  # what the handler would write, without a LogRecord per request
                    handler.stream.write(line + handler.terminator)
                    handler.stream.flush()
            else:
                log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, (), None))
        except Exception:
            self.error_log.exception("could not write an access log line")


def _message_only(handler: logging.Handler) -> bool:
    formatter = handler.formatter
    return formatter is not None and type(formatter) is logging.Formatter and formatter._fmt == "%(message)s"
