"""gunicorn's own logs (access and errors) as the same JSON lines as the application's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger

from app.observability import JsonFormatter


class JsonLogger(Logger):
    """Access lines carry method, path, status, duration and the response's ``X-Request-ID``."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        headers = dict((name.lower(), value) for name, value in (resp.headers or []))
        entry = {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "INFO",
            "message": "request",
            "logger": "gunicorn.access",
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(str(resp.status).split()[0]) if resp.status else None,
            "duration_s": request_time.total_seconds(),
            "bytes": getattr(resp, "sent", None),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "request_id": headers.get("x-request-id"),
        }
        try:
            self.access_log.info(json.dumps(entry))
        except Exception:
            self.error_log.exception("could not write an access log line")
