"""The two job stores: SQLite (one machine) and Redis (replicas and Celery workers anywhere)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.jobs.store import Job, JobStore
from app.sqlite_files import ThreadConnections

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);
"""


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def get(self, job_id: str) -> Job | None:
        row = self.conn.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, job: Job) -> None:
        doc = json.dumps(job, separators=(",", ":"))
        updated = self.conn.execute(
            "UPDATE jobs SET status = ?, doc = ? WHERE id = ?", (job["status"], doc, job["job_id"])
        ).rowcount
        if not updated:
            self.conn.execute(
                "INSERT INTO jobs (id, seq, status, idempotency_key, doc) "
                "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, ?)",
                (job["job_id"], job["status"], job["idempotency_key"], doc),
            )

    def delete(self, job: Job) -> None:
        self.conn.execute("DELETE FROM jobs WHERE id = ?", (job["job_id"],))

    def ids(self, statuses: tuple[str, ...]) -> list[str]:
        marks = ",".join("?" * len(statuses))
        rows = self.conn.execute(f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY seq", statuses)
        return [row[0] for row in rows]

    def id_for_key(self, key: str) -> str | None:
        row = self.conn.execute("SELECT id FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return row[0] if row else None


class SQLiteJobStore(JobStore):
    """``jobs.sqlite3`` in the state directory (WAL mode); one connection per thread."""

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "jobs.sqlite3"
        self._connect = ThreadConnections(self.path, timeout=30).get
        self._connect().executescript(SQLITE_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[_SQLiteTx]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteTx(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        conn = self._connect()
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        (total,) = conn.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()
        rows = conn.execute(f"SELECT doc FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset))
        return [json.loads(row[0]) for row in rows], total

    def describe(self) -> str:
        return f"sqlite:{self.path}"


class _RedisTx:
    def __init__(self, client: Any, prefix: str):
        self.r = client
        self.p = prefix

    def _key(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}"

    def get(self, job_id: str) -> Job | None:
        raw = self.r.get(self._key(job_id))
        return json.loads(raw) if raw else None

    def put(self, job: Job) -> None:
        if "seq" not in job:
            job["seq"] = int(self.r.incr(f"{self.p}:jobs:seq"))
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(self._key(job["job_id"]), json.dumps(job, separators=(",", ":")))
            pipe.zadd(f"{self.p}:jobs", {job["job_id"]: job["seq"]})
            for status in ("queued", "running", "completed", "failed", "cancelled"):
                if status != job["status"]:
                    pipe.zrem(f"{self.p}:jobs:{status}", job["job_id"])
            pipe.zadd(f"{self.p}:jobs:{job['status']}", {job["job_id"]: job["seq"]})
            if job.get("idempotency_key"):
                pipe.set(f"{self.p}:jobs:key:{job['idempotency_key']}", job["job_id"])
            pipe.execute()

    def delete(self, job: Job) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(job["job_id"]))
            pipe.zrem(f"{self.p}:jobs", job["job_id"])
            pipe.zrem(f"{self.p}:jobs:{job['status']}", job["job_id"])
            if job.get("idempotency_key"):
                pipe.delete(f"{self.p}:jobs:key:{job['idempotency_key']}")
            pipe.execute()

    def ids(self, statuses: tuple[str, ...]) -> list[str]:
        scored: list[tuple[float, str]] = []
        for status in statuses:
            scored += [(s, m.decode()) for m, s in self.r.zrange(f"{self.p}:jobs:{status}", 0, -1, withscores=True)]
        return [job_id for _, job_id in sorted(scored)]

    def id_for_key(self, key: str) -> str | None:
        raw = self.r.get(f"{self.p}:jobs:key:{key}")
        return raw.decode() if raw else None


class RedisJobStore(JobStore):
    """Job documents under ``<prefix>:job:<id>``, indexed by sorted sets; one short lock per transition."""

    def __init__(self, url: str, prefix: str = "modelserve"):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._url = url
        self._prefix = prefix

    @contextmanager
    def _tx(self) -> Iterator[_RedisTx]:
        with self._redis.lock(f"{self._prefix}:jobs:lock", timeout=30, blocking_timeout=30):
            yield _RedisTx(self._redis, self._prefix)

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        index = f"{self._prefix}:jobs:{status}" if status else f"{self._prefix}:jobs"
        with self._redis.pipeline() as pipe:
            pipe.zcard(index)
            pipe.zrevrange(index, offset, offset + limit - 1)
            total, ids = pipe.execute()
        docs = self._redis.mget([f"{self._prefix}:job:{i.decode()}" for i in ids]) if ids else []
        return [json.loads(doc) for doc in docs if doc], int(total)

    def describe(self) -> str:
        return "redis:" + self._url.split("@")[-1]


def build_job_store(settings: dict[str, Any]) -> JobStore:
    jobs = settings["jobs"]
    if jobs["store"] == "redis":
        return RedisJobStore(jobs["redis_url"], jobs["redis_prefix"])
    return SQLiteJobStore(Path(settings["registry"]["state_directory"]))
