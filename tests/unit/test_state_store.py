"""The shared desired state: one document and a generation counter, in SQLite or in Redis.

Every test runs against both stores. ``open_store()`` opens another store
object on the same location, as another worker (SQLite) or replica (Redis) does.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app import desired_state as ds
from app.desired_state import AliasTarget, DesiredState, ModelRecord
from app.errors import ModelNotFound
from app.state_store import RedisStateStore, SQLiteStateStore, build_state_store
from tests.factories import record
from tests.unit.conftest import REDIS_URL


def add(name: str, **changes: Any) -> Callable[[DesiredState], ModelRecord]:
    """The change a ``POST /models/load`` of ``name`` makes."""
    return lambda state: ds.add_version(state, record(name, **changes))


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def open_store(backend: str, state_dir: Path, request: pytest.FixtureRequest) -> Callable[[], Any]:
    """Open a store object on this test's shared location (call twice for two workers)."""
    if backend == "sqlite":
        return lambda: SQLiteStateStore(state_dir)
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisStateStore(REDIS_URL, prefix)


@pytest.fixture
def store(open_store: Callable[[], Any]) -> Any:
    return open_store()


def generation(store: Any) -> int:
    return store.read().generation


# --- reading and changing ------------------------------------------------------------


def test_new_store_is_empty(store):
    state = store.read()
    assert (state.models, state.aliases, state.unloaded) == ({}, {}, {})
    assert store.published_generation() == state.generation
    assert store.ping() is True


def test_new_store_is_at_generation_zero(store):
    assert store.read().generation == 0 == store.published_generation()


def test_transact_applies_the_change_and_returns_its_result(store):
    start = generation(store)
    added = store.transact(add("m"))
    assert added == record("m", version=1)
    state = store.read()
    assert state.models["m"].versions == {1: added}
    assert state.generation == start + 1


def test_generation_moves_once_per_change(store):
    changes = [
        add("m"),
        add("m", sha256="b" * 64),
        add("other"),
        lambda s: ds.set_alias(s, "stable", "m", 1),
        lambda s: ds.rollback(s, "m", None),
        lambda s: ds.remove_alias(s, "stable"),
        lambda s: ds.remove_model(s, "other"),
    ]
    start = generation(store)
    seen = []
    for change in changes:
        store.transact(change)
        seen.append(generation(store) - start)
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    state = store.read()
    assert (state.models["m"].current, state.models["m"].previous) == (1, 2)
    assert set(state.models) == {"m"} and state.aliases == {} and state.unloaded == {"other": "other.joblib"}


@pytest.mark.parametrize(
    "change",
    [lambda s: None, add("m"), lambda s: ds.adopt_file(s, record("m", file="elsewhere.joblib"))],
    ids=["nothing", "same file again", "adopt refused"],
)
def test_no_generation_move_when_the_document_did_not_change(store, change):
    store.transact(add("m"))
    before, published = store.read(), store.published_generation()
    store.transact(change)
    assert store.read() == before
    assert store.published_generation() == published == before.generation


def test_a_change_that_raises_writes_nothing(store):
    store.transact(add("m"))
    before = store.read()

    def half_done(state: DesiredState) -> None:
        ds.add_version(state, record("new"))  # mutates the document ...
        ds.remove_model(state, "missing")  # ... then fails

    def crash(state: DesiredState) -> None:
        ds.remove_model(state, "m")
        raise RuntimeError("boom")

    with pytest.raises(ModelNotFound):
        store.transact(half_done)
    with pytest.raises(RuntimeError, match="boom"):
        store.transact(crash)
    assert store.read() == before
    assert store.published_generation() == before.generation
    store.transact(add("after"))  # the store is usable again
    assert set(store.read().models) == {"m", "after"}


def test_the_document_round_trips_through_the_store(store):
    store.transact(add("m"))
    store.transact(add("m", file="m2.joblib", sha256="b" * 64))
    store.transact(add("gone"))
    store.transact(lambda s: ds.set_alias(s, "stable", "m", 1))
    store.transact(lambda s: ds.remove_model(s, "gone"))
    expected = DesiredState()
    for change in (add("m"), add("m", file="m2.joblib", sha256="b" * 64)):
        change(expected)
    ds.set_alias(expected, "stable", "m", 1)
    expected.unloaded["gone"] = "gone.joblib"
    state = store.read()
    assert state == replace(expected, generation=state.generation)
    assert state.aliases == {"stable": AliasTarget("m", 1)}


# --- publishing the generation -----------------------------------------------------------


def published_by_the_backend(backend: str, state_dir: Path, request: pytest.FixtureRequest) -> int:
    """The generation as the backend publishes it, read without the store object."""
    if backend == "sqlite":
        return struct.unpack("<q", (state_dir / "generation.bin").read_bytes())[0]
    client, prefix = request.getfixturevalue("redis_client"), request.getfixturevalue("redis_prefix")
    return int(client.get(f"{prefix}:generation") or 0)


def test_published_generation_follows_every_write(store, backend, state_dir, request):
    start = generation(store)
    for i in range(3):
        store.transact(add(f"m{i}"))
        assert store.published_generation() == generation(store) == start + i + 1
        assert published_by_the_backend(backend, state_dir, request) == start + i + 1
    store.transact(lambda s: ds.remove_model(s, "m0"))
    assert store.published_generation() == generation(store) == start + 4
    assert published_by_the_backend(backend, state_dir, request) == start + 4


def test_two_store_objects_see_each_others_writes(open_store):
    worker_a, worker_b = open_store(), open_store()
    start = generation(worker_a)
    worker_a.transact(add("from_a"))
    assert set(worker_b.read().models) == {"from_a"}
    assert worker_b.published_generation() == start + 1
    worker_b.transact(add("from_b"))
    assert set(worker_a.read().models) == {"from_a", "from_b"}
    assert worker_a.published_generation() == start + 2
    worker_b.transact(lambda s: ds.remove_model(s, "from_a"))
    assert set(worker_a.read().models) == {"from_b"}
    assert worker_a.published_generation() == generation(worker_a) == start + 3


# --- concurrent writers lose no update ------------------------------------------------------


def run_together(threads: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(threads)

    def start(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(start, range(threads)))


def test_concurrent_transacts_from_threads_lose_no_model(store):
    threads, start = 16, generation(store)
    added = run_together(threads, lambda i: store.transact(add(f"t{i}")))
    assert [r.version for r in added] == [1] * threads
    state = store.read()
    assert set(state.models) == {f"t{i}" for i in range(threads)}
    assert state.generation == start + threads == store.published_generation()


def test_concurrent_versions_of_one_model_from_threads_lose_no_version(open_store):
    threads, stores = 12, [open_store() for _ in range(3)]
    start = generation(stores[0])
    added = run_together(threads, lambda i: stores[i % 3].transact(add("m", sha256=f"{i:064x}")))
    assert sorted(r.version for r in added) == list(range(1, threads + 1))
    model = stores[0].read().models["m"]
    assert sorted(model.versions) == list(range(1, threads + 1)) and model.current == threads
    assert {r.sha256 for r in model.versions.values()} == {f"{i:064x}" for i in range(threads)}
    assert generation(stores[1]) == start + threads == stores[2].published_generation()


def _add_from_another_process(state_dir: str, worker: int, names: int, barrier: Any, done: Any) -> None:
    store = SQLiteStateStore(Path(state_dir))
    barrier.wait()
    for i in range(names):
        store.transact(add(f"p{worker}_{i}"))
        store.transact(add("shared", sha256=f"{worker:032x}{i:032x}"))
    done.put(worker)


def test_concurrent_transacts_from_processes_lose_no_update(state_dir):
    start = generation(SQLiteStateStore(state_dir))  # create the file once, as the first worker would
    ctx = multiprocessing.get_context("spawn")
    processes, names = 4, 5
    barrier, done = ctx.Barrier(processes), ctx.SimpleQueue()
    workers = [
        ctx.Process(target=_add_from_another_process, args=(str(state_dir), i, names, barrier, done))
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * processes
    assert sorted(done.get() for _ in range(processes)) == list(range(processes))
    store = SQLiteStateStore(state_dir)
    state = store.read()
    assert set(state.models) == {f"p{w}_{i}" for w in range(processes) for i in range(names)} | {"shared"}
    assert sorted(state.models["shared"].versions) == list(range(1, processes * names + 1))
    assert state.generation == start + 2 * processes * names == store.published_generation()


# --- the audit trail ------------------------------------------------------------------------


def test_audit_is_listed_newest_first_with_total_and_paging(store):
    assert store.audit(10, 0) == ([], 0)
    for i in range(5):
        store.record_audit(f"user{i}", "load", f"m{i}", "success", {"version": i, "nested": {"file": f"m{i}.pkl"}})
    entries, total = store.audit(10, 0)
    assert total == 5
    assert [e["actor"] for e in entries] == ["user4", "user3", "user2", "user1", "user0"]
    assert entries[0] == {
        "at": entries[0]["at"],
        "actor": "user4",
        "action": "load",
        "target": "m4",
        "outcome": "success",
        "details": {"version": 4, "nested": {"file": "m4.pkl"}},
    }
    assert entries[0]["at"].endswith("Z") and entries[0]["at"] >= entries[-1]["at"]
    page, total = store.audit(2, 1)
    assert [e["target"] for e in page] == ["m3", "m2"] and total == 5
    assert store.audit(10, 5) == ([], 5)


def test_audit_details_that_are_not_json_are_written_as_text(store, tmp_path):
    store.record_audit("admin", "load", "m", "failure", {"path": tmp_path / "m.pkl"})
    (entry,), _ = store.audit(1, 0)
    assert entry["details"] == {"path": str(tmp_path / "m.pkl")}


def test_audit_is_shared_by_store_objects(open_store):
    worker_a, worker_b = open_store(), open_store()
    worker_a.record_audit("alice", "delete", "m", "success", {})
    worker_b.record_audit("bob", "alias", "prod", "failure", {"error": "nope"})
    assert [(e["actor"], e["action"]) for e in worker_a.audit(10, 0)[0]] == [("bob", "alias"), ("alice", "delete")]


def test_redis_audit_is_capped(redis_prefix):
    store = RedisStateStore(REDIS_URL, redis_prefix, audit_max=3)
    for i in range(5):
        store.record_audit("admin", "load", f"m{i}", "success", {})
    entries, total = store.audit(10, 0)
    assert total == 3 and [e["target"] for e in entries] == ["m4", "m3", "m2"]


# --- SQLite specifics -------------------------------------------------------------------------


def test_sqlite_files_and_wal_mode(state_dir):
    store = SQLiteStateStore(state_dir)
    assert store.path == state_dir / "state.sqlite3" and store.describe() == f"sqlite:{store.path}"
    assert (state_dir / "generation.bin").stat().st_size == 8
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_sqlite_reopening_keeps_state_generation_and_audit(state_dir):
    first = SQLiteStateStore(state_dir)
    first.transact(add("kept"))
    first.record_audit("admin", "load", "kept", "success", {})
    expected = first.read()
    reopened = SQLiteStateStore(state_dir)
    assert reopened.read() == expected
    assert reopened.published_generation() == expected.generation
    assert reopened.audit(10, 0)[1] == 1


def test_sqlite_reopening_repairs_a_stale_published_generation(state_dir):
    store = SQLiteStateStore(state_dir)
    store.transact(add("kept"))
    committed = generation(store)
    (state_dir / "generation.bin").write_bytes(struct.pack("<q", committed + 5))  # a writer died before commit
    assert SQLiteStateStore(state_dir).published_generation() == committed


# --- Redis specifics and choosing a backend ---------------------------------------------------------


def test_redis_ping_is_false_when_redis_is_unreachable():
    store = RedisStateStore("redis://127.0.0.1:1/0", "nowhere")
    assert store.ping() is False


def test_redis_describe_shows_no_credentials():
    store = RedisStateStore("redis://user:s3cret@redis.example:6380/2", "p")
    assert store.describe() == "redis:redis.example:6380/2"


def test_build_state_store_chooses_the_backend(tmp_path, redis_prefix):
    settings = {"state_directory": str(tmp_path / "s"), "redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    sqlite_store = build_state_store({"backend": "sqlite", **settings})
    assert isinstance(sqlite_store, SQLiteStateStore) and sqlite_store.path == tmp_path / "s" / "state.sqlite3"
    redis_store = build_state_store({"backend": "redis", **settings})
    assert isinstance(redis_store, RedisStateStore)
    redis_store.transact(add("m"))
    assert set(RedisStateStore(REDIS_URL, redis_prefix).read().models) == {"m"}
    assert sqlite_store.read().models == {}


def test_restore_writes_back_a_newer_state_only(store):
    for name in ("a", "b"):
        store.transact(add(name))
    kept = store.read()
    fresh = DesiredState()  # what a store that lost its data holds
    assert not store.restore(fresh) and generation(store) == kept.generation
    emptied = DesiredState(generation=kept.generation + 3, models=kept.models)
    assert store.restore(emptied)
    assert generation(store) == kept.generation + 3 and set(store.read().models) == {"a", "b"}
    assert store.published_generation() == kept.generation + 3
