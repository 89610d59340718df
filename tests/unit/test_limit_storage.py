"""The in-process rate-limit storage (``memory://``): fixed windows through the limits storage interface."""

from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.security import limit_storage
from app.security.limit_storage import InProcessStorage


@pytest.fixture
def clock(monkeypatch):
    """A settable time.time() for the storage."""
    now = [1_000_000.0]
    monkeypatch.setattr(limit_storage.time, "time", lambda: now[0])
    return now


def test_limits_finds_it_by_its_scheme():
    assert isinstance(storage_from_string(f"{limit_storage.SCHEME}://"), InProcessStorage)


def test_counts_within_a_window_and_starts_again_after_it(clock):
    storage = InProcessStorage()
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and storage.get_expiry("k") == clock[0] + 60
    clock[0] += 59.9
    assert storage.incr("k", 60) == 4
    clock[0] += 0.2  # the window has ended
    assert storage.get("k") == 0
    assert storage.incr("k", 60) == 1 and storage.get_expiry("k") == clock[0] + 60


def test_keys_are_counted_apart_and_can_be_cleared(clock):
    storage = InProcessStorage()
    storage.incr("a", 60, amount=5)
    storage.incr("b", 60)
    storage.clear("a")
    assert (storage.get("a"), storage.get("b")) == (0, 1)
    assert storage.reset() == 1 and storage.get("b") == 0
    assert storage.check()


def test_ended_windows_are_swept_from_the_hit_path(clock):
    storage = InProcessStorage()
    for n in range(100):
        storage.incr(f"client-{n}", 1)
    clock[0] += limit_storage.SWEEP_EVERY_SECONDS + 1
    storage.incr("new", 60)
    assert storage.reset() == 1  # only the new client's counter was left


def test_the_fixed_window_strategy_limits_with_it(clock):
    strategy = FixedWindowRateLimiter(InProcessStorage())
    item = parse("3/minute")
    assert [strategy.hit(item, "user:a", "predict") for _ in range(4)] == [True, True, True, False]
    assert strategy.hit(item, "user:b", "predict")  # another client
    reset, remaining = strategy.get_window_stats(item, "user:a", "predict")
    assert remaining == 0 and reset == pytest.approx(clock[0] + 60)


def test_concurrent_hits_are_all_counted():
    storage = InProcessStorage()

    def hit() -> None:
        for _ in range(1000):
            storage.incr("k", 60)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert storage.get("k") == 4000
