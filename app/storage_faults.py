"""A full or read-only disk: the request that meets it gets a clear 507 or 503, health names the path.

Nothing here remembers a fault: every answer looks at the disk as it is now, so the service
works again as soon as space returns or the filesystem is writable, without a restart. Writes
that fail leave state as it was (SQLite rolls the transaction back; job outputs are written
under a temporary name first).
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.errors import ApiError, ServiceUnavailable

log = logging.getLogger(__name__)

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_READONLY, _SQLITE_FULL = 8, 13  # primary result codes (the low byte of extended ones)
#: Less free space than this counts as full: SQLite and CSV writers need a few pages at once.
MIN_FREE_BYTES = 1024 * 1024


class InsufficientStorage(ApiError):
    """507: the disk the change would be written to is full; nothing was changed."""

    code = 507


class ReadOnlyStorage(ServiceUnavailable):
    """503: the disk the change would be written to is read-only; nothing was changed."""


def storage_fault(exc: BaseException, where: Path | None = None) -> ApiError | None:
    """The client's error for a failed write, or ``None`` when ``exc`` is no storage fault.

    ``where`` names the directory when ``exc`` names no file (a failed ``write`` names none).
    """
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return _full(exc.filename or where)
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return _read_only(exc.filename or where)
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return _full("the state store")
    if code is not None and code & 0xFF == _SQLITE_READONLY:
        return _read_only("the state store")
    return None


def _full(where: Any) -> InsufficientStorage:
    return InsufficientStorage(
        f"No space left on the disk of {where or 'the server data'}: nothing was changed. "
        "Retry once space is freed; GET /api/v1/health names the full path."
    )


def _read_only(where: Any) -> ReadOnlyStorage:
    return ReadOnlyStorage(
        f"The disk of {where or 'the server data'} is read-only: nothing was changed. "
        "Retry once it is writable; GET /api/v1/health names the path."
    )


def register_storage_errors(app: Any, api: Any) -> None:
    """Answer storage faults from any view in the one error shape; other errors stay 500s."""

    def handle(exc: Exception) -> Any:
        fault = storage_fault(exc)
        if fault is None:
            raise exc  # Flask logs it and answers the one 500
        log.error("write refused by the disk: %s", exc)
        return api.handle_http_exception(fault)

    app.register_error_handler(OSError, handle)
    app.register_error_handler(sqlite3.Error, handle)


def disk_problem(path: Path) -> str | None:
    """Why ``path`` (or the nearest existing parent, where it would be created) cannot be written now."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    stats = os.statvfs(path)
    if stats.f_flag & os.ST_RDONLY or not os.access(path, os.W_OK):
        return f"{path}: read-only"
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        return f"{path}: no space left"
    return None


def require_writable(path: Path) -> None:
    """Refuse a change that would be written under ``path`` now, rather than fail half-way."""
    problem = disk_problem(path)
    if problem is None:
        return
    raise _read_only(path) if problem.endswith("read-only") else _full(path)


def storage_check(paths: Iterable[Path]) -> dict[str, Any]:
    """Health's ``storage`` check: ``degraded`` (predictions still served) naming each path that cannot be written."""
    problems = [problem for problem in map(disk_problem, dict.fromkeys(paths)) if problem]
    return {"status": "degraded" if problems else "healthy", "problems": problems}
