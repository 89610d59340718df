"""The two job stores: SQLite (one machine) and Redis (replicas and Celery workers anywhere)."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.dependencies import Outage, address_of, redis_options
from app.jobs.errors import JobStoreUnavailable
from app.jobs.store import Job, JobStore, new_owner, owner_is_dead
from app.sqlite_files import ThreadConnections

log = logging.getLogger(__name__)

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


@contextmanager
def _unavailable_on(errors: type[Exception] | tuple[type[Exception], ...], store: str) -> Iterator[None]:
    """The store's own failures (down, timed out, locked) become a 503 the client may retry, not a 500."""
    try:
        yield
    except errors as exc:
        raise JobStoreUnavailable(
            f"The job store ({store.split('@')[-1]}) did not answer ({type(exc).__name__}); retry in a few seconds."
        ) from exc


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
        with self._transaction("BEGIN IMMEDIATE") as tx:
            yield tx

    @contextmanager
    def _read(self) -> Iterator[_SQLiteTx]:
        """A deferred transaction: a consistent snapshot that WAL lets run beside a writer."""
        with self._transaction("BEGIN") as tx:
            yield tx

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_SQLiteTx]:
        with _unavailable_on(sqlite3.OperationalError, self.describe()):
            conn = self._connect()
            conn.execute(begin)
            try:
                yield _SQLiteTx(conn)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:  # the body or the commit failed: never leave the thread's connection mid-way
                    conn.execute("ROLLBACK")

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        with _unavailable_on(sqlite3.OperationalError, self.describe()):
            conn = self._connect()
            where, args = ("WHERE status = ?", (status,)) if status else ("", ())
            (total,) = conn.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()
            rows = conn.execute(
                f"SELECT doc FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)
            )
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


# Deletes the lock only if ``ARGV[1]`` still holds it (a dead holder's, never a successor's).
_BREAK_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisJobStore(JobStore):
    """Job documents under ``<prefix>:job:<id>``, indexed by sorted sets; one short lock per transition.

    Reads take no lock: each document is written whole by one command. The
    lock names its holder (``host:pid:token``, as job owners do): a lock left by
    a process of this host that died holding it (a SIGKILLed worker) is broken
    at once; one from another host lapses after ``lock_seconds``, which a
    waiter outlasts (``lock_wait_seconds``) before answering 503.
    """

    lock_seconds = 30.0
    lock_wait_seconds = 35.0
    #: How often a waiter tries the lock, and how long between looks at who holds it.
    lock_retry_seconds = 0.02
    holder_check_seconds = 0.25

    def __init__(self, url: str, prefix: str = "modelserve"):
        import redis

        self._redis = redis.Redis.from_url(url, **{**redis_options(), "socket_timeout": 10})
        #: Health's client: asks with the short timeout of the other stores, not the 10 s a transition may take.
        self._pinger = redis.Redis.from_url(url, **redis_options())
        self._url = url
        self.dependency = Outage("redis", address_of(url), "jobs", "job submissions and queries answer 503", self.ping)
        self._prefix = prefix
        self._lock_name = f"{prefix}:jobs:lock"
        self._break_lock = self._redis.register_script(_BREAK_LOCK)
        self._errors = redis.RedisError

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Redis's failures as a 503 and the outage's record; while Redis is down, a 503 at once."""
        outage = self.dependency
        if outage.down:
            raise JobStoreUnavailable(f"The job store ({self.describe()}) is unreachable; retry in a few seconds.")
        try:
            with _unavailable_on(self._errors, self.describe()):
                yield
        except JobStoreUnavailable as exc:
            if isinstance(exc.__cause__, self._errors):
                outage.failed(exc.__cause__)
            else:  # Redis answered, and its lock stayed busy
                outage.answered()
            raise
        except BaseException:  # Redis answered; the job store said no (an unknown job, a conflict)
            outage.answered()
            raise
        outage.answered()

    @contextmanager
    def _tx(self) -> Iterator[_RedisTx]:
        with self._reachable():
            lock = self._redis.lock(self._lock_name, timeout=self.lock_seconds, sleep=self.lock_retry_seconds)
            token = new_owner()
            deadline = time.monotonic() + self.lock_wait_seconds
            while not lock.acquire(blocking_timeout=self.holder_check_seconds, token=token):
                if self._break_dead_holder():
                    continue
                if time.monotonic() >= deadline:
                    raise JobStoreUnavailable(
                        f"The job store is busy: its lock was not free within {self.lock_wait_seconds:g} s."
                    )
            try:
                yield _RedisTx(self._redis, self._prefix)
            finally:
                lock.release()

    @contextmanager
    def _read(self) -> Iterator[_RedisTx]:
        with self._reachable():
            yield _RedisTx(self._redis, self._prefix)

    def _break_dead_holder(self) -> bool:
        """Delete the lock if a process of this host that has exited holds it."""
        raw = self._redis.get(self._lock_name)
        holder = raw.decode(errors="replace") if raw else None
        if not owner_is_dead(holder) or not self._break_lock(keys=[self._lock_name], args=[raw]):
            return False
        log.warning("job store lock %s was held by %s, which has exited: broken", self._lock_name, holder)
        return True

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        index = f"{self._prefix}:jobs:{status}" if status else f"{self._prefix}:jobs"
        with self._reachable():
            with self._redis.pipeline() as pipe:
                pipe.zcard(index)
                pipe.zrevrange(index, offset, offset + limit - 1)
                total, ids = pipe.execute()
            docs = self._redis.mget([f"{self._prefix}:job:{i.decode()}" for i in ids]) if ids else []
            return [json.loads(doc) for doc in docs if doc], int(total)

    def ping(self) -> bool:
        try:
            return bool(self._pinger.ping())
        except Exception:
            return False

    def describe(self) -> str:
        return "redis:" + self._url.split("@")[-1]


def build_job_store(settings: dict[str, Any]) -> JobStore:
    jobs = settings["jobs"]
    if jobs["store"] == "redis":
        return RedisJobStore(jobs["redis_url"], jobs["redis_prefix"])
    return SQLiteJobStore(Path(settings["registry"]["state_directory"]))
