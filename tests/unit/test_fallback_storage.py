"""Rate limits on a Redis that goes away: counted per worker meanwhile, one warning, back in Redis when it returns."""

from __future__ import annotations

import logging

import pytest
from limits import parse
from limits.strategies import FixedWindowRateLimiter

from app import dependencies
from app.security.fallback_storage import FallbackStorage
from app.security.rate_limits import build_storage
from tests.chaos.redis_server import RedisServer


@pytest.fixture
def clock(monkeypatch):
    """A settable monotonic clock for the outage records."""
    now = [1000.0]
    monkeypatch.setattr(dependencies.time, "monotonic", lambda: now[0])
    return now


def test_a_lost_redis_is_counted_per_worker_with_one_warning_and_left_when_it_returns(tmp_path, clock, caplog):
    redis = RedisServer(tmp_path)  # its port, not started yet: Redis is down from the start
    changes: list[bool] = []
    storage = build_storage(redis.url(0), None, changes.append)
    assert isinstance(storage, FallbackStorage)
    strategy, item = FixedWindowRateLimiter(storage), parse("3/minute")
    with caplog.at_level(logging.WARNING, logger="app.dependencies"):
        assert [strategy.hit(item, "user:a") for _ in range(4)] == [True, True, True, False]  # still limited
        assert strategy.get_window_stats(item, "user:a").remaining == 0
        assert changes == [False] and not storage.check()
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1 and "rate limits: redis at 127.0.0.1" in warnings[0].getMessage()
        assert "counting limits per worker" in warnings[0].getMessage()
        with redis:
            assert not strategy.hit(item, "user:a")  # no retry before a second has passed
            clock[0] += dependencies.RETRY_EVERY_SECONDS
            assert strategy.hit(item, "user:a")  # counted in Redis again: a fresh counter there
            assert changes == [False, True] and storage.check()
            assert strategy.get_window_stats(item, "user:a").remaining == 2
            assert "answers again" in caplog.text
        clock[0] += dependencies.RETRY_EVERY_SECONDS
        assert strategy.hit(item, "user:b")  # down again: a second outage, a second warning
        assert changes == [False, True, False]
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 2


def test_address_never_shows_credentials():
    assert dependencies.address_of("redis://:s3cret@cache.internal:6380/2") == "cache.internal:6380/2"
    assert dependencies.address_of("redis://localhost") == "localhost:6379/0"
