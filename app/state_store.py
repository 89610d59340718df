"""The registry's desired state, shared by every worker: which models should be served.

An embedded SQLite file (WAL mode, safe with many processes) under the
configured state directory. A ``generation`` counter changes with every write.
Writers also publish it in a memory-mapped 8-byte file, so a worker learns
that something changed by reading eight bytes of shared memory: cheap enough
to do on every request, which is what makes "once DELETE returns, no worker
serves the model" hold without a database query per request.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import struct
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
-- Models unloaded through the API: start-up auto-loading must not bring them back.
CREATE TABLE IF NOT EXISTS unloaded (name TEXT PRIMARY KEY, file TEXT NOT NULL);
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
        self._connect().executescript(SCHEMA)
        self._published = _open_counter(state_dir / "generation.bin")
        self._write(lambda conn: None)  # re-publish, in case a writer died between publish and commit

    def published_generation(self) -> int:
        """The generation writers last published; compare with what :meth:`generation` returned."""
        return struct.unpack_from("<q", self._published, 0)[0]

    def _write(self, change) -> Any:
        """Run ``change(conn)`` in a write transaction and publish the resulting generation.

        Publishing happens before COMMIT, while SQLite's write lock orders the
        writers, so the published value never goes backwards.
        """
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = change(conn)
            (generation,) = conn.execute("SELECT value FROM counters WHERE name='generation'").fetchone()
            struct.pack_into("<q", self._published, 0, generation)
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
        """Insert or replace ``record``; return False when a rule refused it.

        ``max_models`` caps the number of models; ``only_if_new_or_same_file``
        (start-up auto-loading) neither takes a name another file holds nor
        brings back a model that was unloaded through the API. The checks run
        in the same write transaction as the insert, so two workers racing to
        add the last free slot cannot both succeed.
        """

        def change(conn: sqlite3.Connection) -> bool:
            if only_if_new_or_same_file:
                if conn.execute(
                    "SELECT 1 FROM unloaded WHERE name=? AND file=?", (record.name, record.file)
                ).fetchone():
                    return False
            else:
                conn.execute("DELETE FROM unloaded WHERE name=?", (record.name,))
            existing = conn.execute("SELECT file, sha256 FROM models WHERE name=?", (record.name,)).fetchone()
            if existing is None and max_models is not None:
                (count,) = conn.execute("SELECT COUNT(*) FROM models").fetchone()
                if count >= max_models:
                    return False
            if existing is not None and only_if_new_or_same_file:
                if existing[0] != record.file:
                    return False
                if existing[1] == record.sha256:
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
            _bump(conn)
            return True

        return self._write(change)

    def remove(self, name: str) -> bool:
        def change(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT file FROM models WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM models WHERE name=?", (name,))
            conn.execute("INSERT OR REPLACE INTO unloaded (name, file) VALUES (?, ?)", (name, row[0]))
            _bump(conn)
            return True

        return self._write(change)

    def ping(self) -> bool:
        try:
            self.generation()
            return True
        except sqlite3.Error:
            return False


def _bump(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE counters SET value = value + 1 WHERE name='generation'")


def _open_counter(path: Path) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
        return mmap.mmap(fd, 8)
    finally:
        os.close(fd)
