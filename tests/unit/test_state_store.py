"""The shared desired state: one SQLite file and a published generation counter, used by every worker."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from app.state_store import ModelRecord, SQLiteStateStore, utc_now


def record(name: str, file: str | None = None, sha256: str = "a" * 64, **changes: object) -> ModelRecord:
    base = ModelRecord(
        name=name,
        file=file or f"{name}.joblib",
        model_type="sklearn",
        sha256=sha256,
        size_bytes=123,
        metadata={"labels": ["a", "b"], "version": "1"},
        origin="api",
        registered_at=utc_now(),
    )
    return replace(base, **changes)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> SQLiteStateStore:
    return SQLiteStateStore(state_dir)


# --- round trip -----------------------------------------------------------------


def test_new_store_is_empty_at_generation_zero(store, state_dir):
    assert store.records() == {}
    assert store.generation() == 0 == store.published_generation()
    assert store.ping() is True
    assert (state_dir / "registry.sqlite3").is_file() and (state_dir / "generation.bin").stat().st_size == 8


def test_put_records_remove_round_trip(store):
    first, second = record("one"), record("two", metadata={"nested": {"x": [1, 2]}})
    assert store.put(first) is True
    assert store.put(second) is True
    assert store.records() == {"one": first, "two": second}
    assert store.remove("one") is True
    assert store.records() == {"two": second}
    assert store.remove("one") is False
    assert store.remove("two") is True
    assert store.records() == {}


def test_put_replaces_a_record_with_the_same_name(store):
    store.put(record("m", sha256="a" * 64))
    newer = record("m", file="m2.joblib", sha256="b" * 64, origin="auto_load")
    assert store.put(newer) is True
    assert store.records() == {"m": newer}


# --- the generation counter -------------------------------------------------------


def test_generation_increments_on_every_change(store):
    generations = [store.generation()]
    store.put(record("one"))
    generations.append(store.generation())
    store.put(record("two"))
    generations.append(store.generation())
    store.put(record("one", sha256="b" * 64))  # replace
    generations.append(store.generation())
    store.remove("two")
    generations.append(store.generation())
    assert generations == [0, 1, 2, 3, 4]


def test_generation_does_not_change_on_a_no_op(store):
    store.put(record("one", file="one.joblib", sha256="a" * 64))
    before = store.generation()
    assert store.remove("missing") is False
    assert store.put(record("two"), max_models=1) is False
    assert store.put(record("one", file="one.joblib", sha256="a" * 64), only_if_new_or_same_file=True) is True
    assert store.put(record("one", file="other.joblib"), only_if_new_or_same_file=True) is False
    assert store.generation() == before == store.published_generation()


def test_published_generation_follows_every_write(store):
    for i in range(3):
        store.put(record(f"m{i}"))
        assert store.published_generation() == store.generation() == i + 1
    store.remove("m0")
    assert store.published_generation() == store.generation() == 4


# --- limits and the same-file rule -------------------------------------------------


def test_max_models_refuses_a_new_name_when_full(store):
    assert store.put(record("one"), max_models=2) is True
    assert store.put(record("two"), max_models=2) is True
    assert store.put(record("three"), max_models=2) is False
    assert set(store.records()) == {"one", "two"}


def test_max_models_still_allows_replacing_an_existing_name(store):
    store.put(record("one"), max_models=1)
    replacement = record("one", sha256="b" * 64)
    assert store.put(replacement, max_models=1) is True
    assert store.records() == {"one": replacement}


def test_max_models_none_means_no_limit(store):
    assert all(store.put(record(f"m{i}")) for i in range(20))
    assert len(store.records()) == 20


def test_only_if_new_or_same_file_adds_a_new_name(store):
    new = record("new")
    assert store.put(new, only_if_new_or_same_file=True) is True
    assert store.records() == {"new": new}


def test_only_if_new_or_same_file_keeps_an_identical_record(store):
    original = record("m", file="m.joblib", sha256="a" * 64, origin="api")
    store.put(original)
    again = record("m", file="m.joblib", sha256="a" * 64, origin="auto_load", registered_at="later")
    assert store.put(again, only_if_new_or_same_file=True) is True
    assert store.records() == {"m": original}  # untouched: origin and registered_at are the original's


def test_only_if_new_or_same_file_updates_a_changed_file(store):
    store.put(record("m", file="m.joblib", sha256="a" * 64))
    changed = record("m", file="m.joblib", sha256="b" * 64, origin="auto_load")
    assert store.put(changed, only_if_new_or_same_file=True) is True
    assert store.records() == {"m": changed}


def test_only_if_new_or_same_file_refuses_a_name_held_by_another_file(store):
    held = record("m", file="api_loaded.pkl")
    store.put(held)
    assert store.put(record("m", file="m.joblib"), only_if_new_or_same_file=True) is False
    assert store.records() == {"m": held}


def test_both_rules_together(store):
    store.put(record("a"), max_models=1)
    # a full store still lets the same-named, same-file record through ...
    assert store.put(record("a", sha256="c" * 64), max_models=1, only_if_new_or_same_file=True) is True
    # ... but not a new name
    assert store.put(record("b"), max_models=1, only_if_new_or_same_file=True) is False


def test_a_failing_change_rolls_back_and_publishes_nothing(store):
    store.put(record("one"))

    def explode(conn):
        conn.execute("UPDATE counters SET value = value + 100 WHERE name='generation'")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store._write(explode)
    assert store.generation() == 1 == store.published_generation()
    assert store.put(record("two")) is True  # the connection is usable again


# --- several workers ----------------------------------------------------------------


def test_two_stores_on_one_directory_see_each_other(state_dir):
    worker_a, worker_b = SQLiteStateStore(state_dir), SQLiteStateStore(state_dir)
    worker_a.put(record("from_a"))
    assert set(worker_b.records()) == {"from_a"}
    assert worker_b.published_generation() == worker_b.generation() == 1
    worker_b.put(record("from_b"))
    assert set(worker_a.records()) == {"from_a", "from_b"}
    assert worker_a.published_generation() == 2
    worker_b.remove("from_a")
    assert set(worker_a.records()) == {"from_b"}
    assert worker_a.published_generation() == worker_a.generation() == 3


def test_reopening_keeps_state_and_generation(state_dir):
    SQLiteStateStore(state_dir).put(record("kept"))
    reopened = SQLiteStateStore(state_dir)
    assert set(reopened.records()) == {"kept"}
    assert reopened.generation() == 1 == reopened.published_generation()


def test_reopening_repairs_a_stale_published_generation(state_dir):
    SQLiteStateStore(state_dir).put(record("kept"))
    (state_dir / "generation.bin").write_bytes(b"\0" * 8)  # as if a writer died between publish and commit
    assert SQLiteStateStore(state_dir).published_generation() == 1


def test_concurrent_puts_from_threads_never_exceed_max_models(store):
    max_models, threads = 5, 16
    barrier = threading.Barrier(threads)

    def put(i: int) -> bool:
        barrier.wait()
        return store.put(record(f"t{i}"), max_models=max_models)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(put, range(threads)))
    assert results.count(True) == max_models
    assert len(store.records()) == max_models
    assert store.generation() == max_models == store.published_generation()


def _put_from_another_process(state_dir: str, worker: int, names: int, max_models: int, barrier, results) -> None:
    store = SQLiteStateStore(Path(state_dir))
    barrier.wait()
    accepted = sum(store.put(record(f"p{worker}_{i}"), max_models=max_models) for i in range(names))
    results.put(accepted)


def test_concurrent_puts_from_processes_never_exceed_max_models(state_dir):
    SQLiteStateStore(state_dir)  # create the schema once, as the first worker would
    ctx = multiprocessing.get_context("spawn")
    processes, names, max_models = 4, 6, 7
    barrier, results = ctx.Barrier(processes), ctx.SimpleQueue()
    workers = [
        ctx.Process(target=_put_from_another_process, args=(str(state_dir), i, names, max_models, barrier, results))
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * processes
    accepted = [results.get() for _ in range(processes)]
    store = SQLiteStateStore(state_dir)
    assert sum(accepted) == max_models
    assert len(store.records()) == max_models
    assert store.generation() == max_models == store.published_generation()
