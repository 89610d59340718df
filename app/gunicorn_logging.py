"""gunicorn's own logs (access and errors) through ``logging``, as the same JSON lines as the application's."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from app.observability import REQUEST_ID_HEADER, JsonFormatter


class JsonLogger(Logger):
    """gunicorn's logger with :class:`~app.observability.JsonFormatter` on its handlers.

    Access lines carry method, path, status, duration, bytes, the client's
    address and the response's ``X-Request-ID``, as fields of one JSON object.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        header = REQUEST_ID_HEADER.lower()
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(str(resp.status).split()[0]) if resp.status else None,
            "duration_s": request_time.total_seconds(),
            "bytes": getattr(resp, "sent", None),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "request_id": next((v for k, v in resp.headers or () if k.lower() == header), None),
        }
        log = self.access_log
        try:  # a record made here, not by Logger.info, which would walk the stack for a caller no line prints
            if log.isEnabledFor(logging.INFO):
                log.handle(log.makeRecord(log.name, logging.INFO, "", 0, "request", None, None, extra=fields))
        except Exception:
            self.error_log.exception("could not write an access log line")
