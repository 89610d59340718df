"""The ``shared-memory://`` rate-limit storage: fixed windows in one table that processes share."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.security import shared_limit_storage as shared
from app.security.rate_limits import build_storage
from app.security.shared_limit_storage import SharedMemoryStorage


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(shared.time, "time", lambda: now[0])
    return now


@pytest.fixture
def uri(tmp_path):
    return f"{shared.SCHEME}://{tmp_path / 'state' / shared.FILE_NAME}"


def test_limits_finds_it_by_its_scheme_and_the_config_by_its_uri(uri, tmp_path):
    assert isinstance(storage_from_string(uri), SharedMemoryStorage)
    built = build_storage("shared-memory://", tmp_path / "elsewhere")
    assert isinstance(built, SharedMemoryStorage) and built.path == (tmp_path / "elsewhere" / shared.FILE_NAME)


def test_counts_within_a_window_and_starts_again_after_it(uri, clock):
    storage = SharedMemoryStorage(uri)
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and storage.get_expiry("k") == clock[0] + 60
    clock[0] += 59.9
    assert storage.incr("k", 60) == 4
    clock[0] += 0.2
    assert storage.get("k") == 0
    assert storage.incr("k", 60) == 1 and storage.get_expiry("k") == clock[0] + 60


def test_keys_are_counted_apart_cleared_and_reset(uri, clock):
    storage = SharedMemoryStorage(uri)
    storage.incr("a", 60, amount=5)
    storage.incr("b", 60)
    storage.clear("a")
    assert (storage.get("a"), storage.get("b")) == (0, 1)
    storage.reset()
    assert storage.get("b") == 0 and storage.check()


def test_two_opens_of_the_file_share_counts_and_salt(uri, clock):
    first, second = SharedMemoryStorage(uri), SharedMemoryStorage(uri)
    first.incr("k", 60)
    assert second.incr("k", 60) == 2 and first.get("k") == 2


def test_a_file_of_another_layout_is_laid_out_again(uri, clock, tmp_path):
    path = tmp_path / "state" / shared.FILE_NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a table")
    storage = SharedMemoryStorage(uri)
    assert storage.incr("k", 60) == 1
    assert path.stat().st_size == shared.HEADER_SIZE + shared.CAPACITY * shared.SLOT_SIZE


def test_colliding_keys_keep_their_own_counters_and_a_full_neighbourhood_evicts_the_oldest(uri, clock, monkeypatch):
    storage = SharedMemoryStorage(uri)
    monkeypatch.setattr(storage, "_digest", lambda key: int(key) * shared.CAPACITY + 5)  # all in slot 5's chain
    for n in range(1, shared.PROBES + 1):
        clock[0] += 1
        assert storage.incr(str(n), 60) == 1
    assert storage.incr("1", 60) == 2 and storage.get(str(shared.PROBES)) == 1
    clock[0] += 1
    assert storage.incr("999", 60) == 1  # no room: the window that ends first (key 1's) is taken over
    assert storage.get("1") == 0 and storage.get("2") == 1 and storage.get("999") == 1
    clock[0] += 120  # every window ended: their slots are free again, and found by probing
    assert storage.incr("12", 60) == 1 and storage.incr("12", 60) == 2


def test_the_fixed_window_strategy_limits_with_it(uri, clock):
    strategy = FixedWindowRateLimiter(SharedMemoryStorage(uri))
    item = parse("3/minute")
    assert [strategy.hit(item, "user:a", "predict") for _ in range(4)] == [True, True, True, False]
    reset, remaining = strategy.get_window_stats(item, "user:a", "predict")
    assert remaining == 0 and reset == pytest.approx(clock[0] + 60)


def _hit_many(uri: str, times: int) -> None:
    storage = SharedMemoryStorage(uri)
    for _ in range(times):
        storage.incr("k", 600)


def test_processes_and_threads_count_every_hit(uri):
    storage = SharedMemoryStorage(uri)
    ctx = multiprocessing.get_context("spawn")  # separate processes, each mapping the file itself
    processes = [ctx.Process(target=_hit_many, args=(uri, 500)) for _ in range(3)]
    threads = [threading.Thread(target=_hit_many, args=(uri, 500)) for _ in range(2)]
    for worker in (*processes, *threads):
        worker.start()
    for worker in (*processes, *threads):
        worker.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert storage.get("k") == 2500


def test_an_unwritable_state_directory_falls_back_to_per_worker_counting(tmp_path, caplog):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    storage = build_storage("shared-memory://", blocked)
    assert type(storage).__name__ == "InProcessStorage"
    assert "counting per worker" in caplog.text
