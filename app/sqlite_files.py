"""SQLite files shared by gunicorn workers: one connection per thread, WAL mode, patient locks."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class ThreadConnections:
    """Hands each thread its own connection to one SQLite file (connections are not thread-safe)."""

    def __init__(self, path: Path, timeout: float):
        self.path = path
        self.timeout = timeout
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn


def enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL once per file; workers starting together may find the switch locked.

    Changing the journal mode does not wait on the busy handler, so retry a
    bounded number of times; once a file is in WAL mode it stays so.
    """
    for attempt in range(200):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 199:
                raise
            time.sleep(0.01)
