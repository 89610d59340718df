"""Where the desired state lives: shared by every worker (SQLite) or every replica (Redis).

Both stores keep the whole :class:`~app.desired_state.DesiredState` as one
JSON document with a generation counter, change it atomically with
:meth:`transact`, and keep the audit trail of management actions.

A worker checks :meth:`published_generation` on every request. For SQLite
that is 8 bytes of shared memory that writers update while they hold the
write lock, so "once DELETE returns, no worker serves the model" holds at the
cost of a memory read. For Redis it is one GET (replicas on other machines
share no memory); ``registry.sync_interval_ms`` can trade that round trip for
a bounded staleness.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from app.dependencies import Outage, address_of, redis_options
from app.desired_state import DesiredState, utc_now
from app.errors import ServiceUnavailable
from app.sqlite_files import ThreadConnections
from app.state_snapshot import FILE_NAME as SAVED_STATE_FILE
from app.state_snapshot import SavedState

T = TypeVar("T")

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS desired_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL,
    generation INTEGER NOT NULL
);
INSERT OR IGNORE INTO desired_state (id, doc, generation) VALUES (1, '{}', 0);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL
);
"""


class StateStoreUnavailable(ServiceUnavailable):
    """The shared state cannot be read or changed now (its Redis is unreachable): 503, retry later."""


class StateStore(Protocol):
    """What the registry needs from a store."""

    #: The external service the store lives in, or None (a file of this machine).
    dependency: Outage | None

    def read(self) -> DesiredState: ...

    def transact(self, change: Callable[[DesiredState], T]) -> T:
        """Apply ``change`` atomically; the generation moves only if the document changed."""
        ...

    def published_generation(self) -> int: ...

    def record_audit(self, actor: str, action: str, target: str, outcome: str, details: dict[str, Any]) -> None: ...

    def audit(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]: ...

    def restore(self, state: DesiredState) -> bool:
        """Write ``state`` back if the store holds an older generation (it lost its data); True if written."""
        ...

    def last_saved(self) -> DesiredState | None:
        """A copy of the state kept outside the store, to serve when the store cannot be read at start-up."""
        ...

    def ping(self) -> bool: ...

    def describe(self) -> str: ...


def _encode(state: DesiredState) -> str:
    return json.dumps(state.to_json(), sort_keys=True, separators=(",", ":"))


def _audit_entry(actor: str, action: str, target: str, outcome: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"at": utc_now(), "actor": actor, "action": action, "target": target, "outcome": outcome, "details": details}


class SQLiteStateStore:
    """One SQLite file (WAL mode) under the state directory; one connection per thread."""

    dependency = None

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "state.sqlite3"
        self._connections = ThreadConnections(self.path, timeout=10)
        self._connect = self._connections.get
        self._connect().executescript(SQLITE_SCHEMA)
        self._published = _open_counter(state_dir / "generation.bin")
        self.transact(lambda state: None)  # re-publish, in case a writer died between publish and commit

    def read(self) -> DesiredState:
        doc, generation = self._connect().execute("SELECT doc, generation FROM desired_state").fetchone()
        return DesiredState.from_json(json.loads(doc), generation)

    def transact(self, change: Callable[[DesiredState], T]) -> T:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            doc, generation = conn.execute("SELECT doc, generation FROM desired_state").fetchone()
            state = DesiredState.from_json(json.loads(doc), generation)
            old_doc = _encode(state)  # normalised: a new field or the '{}' seed is not a change
            result = change(state)
            new_doc = _encode(state)
            if new_doc != old_doc:
                generation += 1
                conn.execute("UPDATE desired_state SET doc=?, generation=?", (new_doc, generation))
            # Published while the write lock orders writers: the value never goes backwards.
            struct.pack_into("<q", self._published, 0, generation)
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:  # a full disk may already have ended it: keep the first error
                conn.execute("ROLLBACK")
            raise

    def published_generation(self) -> int:
        return struct.unpack_from("<q", self._published, 0)[0]

    def record_audit(self, actor: str, action: str, target: str, outcome: str, details: dict[str, Any]) -> None:
        entry = _audit_entry(actor, action, target, outcome, details)
        self._connect().execute(
            "INSERT INTO audit (at, actor, action, target, outcome, details) VALUES (?, ?, ?, ?, ?, ?)",
            (entry["at"], actor, action, target, outcome, json.dumps(details, default=str)),
        )

    def audit(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        conn = self._connect()
        (total,) = conn.execute("SELECT COUNT(*) FROM audit").fetchone()
        rows = conn.execute(
            "SELECT at, actor, action, target, outcome, details FROM audit ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        keys = ("at", "actor", "action", "target", "outcome")
        return [{**dict(zip(keys, row[:5], strict=True)), "details": json.loads(row[5])} for row in rows], total

    def last_saved(self) -> DesiredState | None:
        return None  # the file is the store: nothing to fall back on

    def restore(self, state: DesiredState) -> bool:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            (generation,) = conn.execute("SELECT generation FROM desired_state").fetchone()
            if generation < state.generation:
                conn.execute("UPDATE desired_state SET doc=?, generation=?", (_encode(state), state.generation))
                struct.pack_into("<q", self._published, 0, state.generation)
            conn.execute("COMMIT")
            return generation < state.generation
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def ping(self) -> bool:
        try:
            self._connect().execute("SELECT generation FROM desired_state").fetchone()
            return True
        except sqlite3.Error:
            return False

    def describe(self) -> str:
        return f"sqlite:{self.path}"


class RedisStateStore:
    """The same document in Redis, for replicas on several machines.

    Changes use optimistic transactions (WATCH/MULTI/EXEC, retried on conflict);
    the audit trail is a capped list. Redis's own failures become
    :class:`StateStoreUnavailable` (503), so that a management call meets a
    clear error and the registry keeps serving the state it read last.
    """

    MAX_RETRIES = 100

    def __init__(self, url: str, prefix: str = "modelserve", audit_max: int = 10_000, saved: SavedState | None = None):
        import redis

        self._redis = redis.Redis.from_url(url, **redis_options())
        self._errors = redis.RedisError
        self._url = url
        self._state_key = f"{prefix}:state"
        self._generation_key = f"{prefix}:generation"
        self._audit_key = f"{prefix}:audit"
        self._audit_max = audit_max
        self._saved = saved
        self.dependency = Outage(
            "redis",
            address_of(url),
            "registry",
            "serving the models of the last state read; loads, deletes, aliases, rollbacks and trust answer 503",
            self.ping,
        )

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise StateStoreUnavailable(
                f"The registry's shared state (redis at {self.dependency.address}) is unreachable "
                f"({type(exc).__name__}): model management is unavailable until it answers again; predictions "
                "are served from the last state this server read."
            ) from exc

    def read(self) -> DesiredState:
        with self._reachable():
            doc, generation = self._redis.mget(self._state_key, self._generation_key)
        state = DesiredState.from_json(json.loads(doc) if doc else None, int(generation or 0))
        if self._saved is not None and state.generation:
            self._saved.save(state)
        return state

    def last_saved(self) -> DesiredState | None:
        """The state this machine read last (for a worker that starts while Redis is unreachable)."""
        return self._saved.load() if self._saved is not None else None

    def transact(self, change: Callable[[DesiredState], T]) -> T:
        import redis

        with self._reachable():
            for _ in range(self.MAX_RETRIES):
                with self._redis.pipeline() as pipe:
                    try:
                        pipe.watch(self._state_key, self._generation_key)
                        doc, generation = pipe.mget(self._state_key, self._generation_key)
                        old = doc.decode() if doc else _encode(DesiredState())
                        state = DesiredState.from_json(json.loads(old), int(generation or 0))
                        result = change(state)
                        new_doc = _encode(state)
                        if new_doc == old:
                            pipe.unwatch()
                            return result
                        pipe.multi()
                        pipe.set(self._state_key, new_doc)
                        pipe.incr(self._generation_key)
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue
        raise RuntimeError("the Redis state changed under too many concurrent writers; try again")

    def restore(self, state: DesiredState) -> bool:
        """Write ``state`` back into a Redis that lost it (restarted without persistence, a fresh failover)."""
        import redis

        with self._reachable(), self._redis.pipeline() as pipe:
            try:
                pipe.watch(self._generation_key)
                if int(pipe.get(self._generation_key) or 0) >= state.generation:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.set(self._state_key, _encode(state))
                pipe.set(self._generation_key, state.generation)
                pipe.execute()
                return True
            except redis.WatchError:  # another worker wrote first
                return False

    def published_generation(self) -> int:
        with self._reachable():
            return int(self._redis.get(self._generation_key) or 0)

    def record_audit(self, actor: str, action: str, target: str, outcome: str, details: dict[str, Any]) -> None:
        entry = json.dumps(_audit_entry(actor, action, target, outcome, details), default=str)
        with self._reachable(), self._redis.pipeline() as pipe:
            pipe.lpush(self._audit_key, entry)
            pipe.ltrim(self._audit_key, 0, self._audit_max - 1)
            pipe.execute()

    def audit(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self._reachable(), self._redis.pipeline() as pipe:
            pipe.llen(self._audit_key)
            pipe.lrange(self._audit_key, offset, offset + limit - 1)
            total, rows = pipe.execute()
        return [json.loads(row) for row in rows], int(total)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except Exception:
            return False

    def describe(self) -> str:
        return "redis:" + self._url.split("@")[-1]  # no credentials


def build_state_store(registry_config: dict[str, Any]) -> StateStore:
    if registry_config["backend"] == "redis":
        saved = SavedState(Path(registry_config["state_directory"]) / SAVED_STATE_FILE)
        return RedisStateStore(registry_config["redis_url"], registry_config["redis_prefix"], saved=saved)
    return SQLiteStateStore(Path(registry_config["state_directory"]))


def _open_counter(path: Path) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
        return mmap.mmap(fd, 8)
    finally:
        os.close(fd)
