"""The registry's desired state, shared by every worker: which models should be served.

An embedded SQLite file (WAL mode, safe with many processes) under the
configured state directory. A ``generation`` counter changes with every write,
so a worker learns that something changed by reading one integer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    model_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    origin TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('generation', 0);
"""


@dataclass(frozen=True)
class ModelRecord:
    """One model that should be served: its file (relative to the model directory) and identity."""

    name: str
    file: str
    model_type: str
    sha256: str
    size_bytes: int
    metadata: dict[str, Any]
    origin: str  # "auto_load" or "api"
    registered_at: str


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SQLiteStateStore:
    """Desired state in one SQLite file; one connection per thread."""

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "registry.sqlite3"
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        return conn

    def generation(self) -> int:
        row = self._connect().execute("SELECT value FROM counters WHERE name='generation'").fetchone()
        return int(row[0])

    def records(self) -> dict[str, ModelRecord]:
        rows = self._connect().execute(
            "SELECT name, file, model_type, sha256, size_bytes, metadata, origin, registered_at FROM models"
        )
        return {
            row[0]: ModelRecord(*row[:5], json.loads(row[5]), *row[6:])
            for row in rows  # type: ignore[misc]
        }

    def put(
        self, record: ModelRecord, *, max_models: int | None = None, only_if_new_or_same_file: bool = False
    ) -> bool:
        """Insert or replace ``record``; return False when a limit or the same-file rule refused it.

        Both checks run in the same write transaction as the insert, so two
        workers racing to add the last free slot cannot both succeed.
        """
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = conn.execute("SELECT file, sha256 FROM models WHERE name=?", (record.name,)).fetchone()
            if existing is None and max_models is not None:
                (count,) = conn.execute("SELECT COUNT(*) FROM models").fetchone()
                if count >= max_models:
                    conn.execute("ROLLBACK")
                    return False
            if existing is not None and only_if_new_or_same_file:
                if existing[0] != record.file:
                    conn.execute("ROLLBACK")
                    return False
                if existing[1] == record.sha256:
                    conn.execute("ROLLBACK")
                    return True
            conn.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.file,
                    record.model_type,
                    record.sha256,
                    record.size_bytes,
                    json.dumps(record.metadata, sort_keys=True),
                    record.origin,
                    record.registered_at,
                ),
            )
            conn.execute("UPDATE counters SET value = value + 1 WHERE name='generation'")
            conn.execute("COMMIT")
            return True
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def remove(self, name: str) -> bool:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = conn.execute("DELETE FROM models WHERE name=?", (name,)).rowcount
            if deleted:
                conn.execute("UPDATE counters SET value = value + 1 WHERE name='generation'")
            conn.execute("COMMIT")
            return bool(deleted)
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def ping(self) -> bool:
        try:
            self.generation()
            return True
        except sqlite3.Error:
            return False
