"""Rate limits on a Redis that goes away: counted per worker meanwhile, one warning, back in Redis when it returns."""

from __future__ import annotations

import logging
import time

from limits import parse
from limits.strategies import FixedWindowRateLimiter

from app import dependencies
from app.security.fallback_storage import FallbackStorage
from app.security.rate_limits import build_storage
from tests.chaos.redis_server import RedisServer
from tests.helpers import poll_until


def test_a_lost_redis_is_counted_per_worker_with_one_warning_and_left_when_it_returns(tmp_path, caplog):
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
            assert not strategy.hit(item, "user:a")  # requests never try Redis while it is down...
            # ...the outage's own thread does, once a second, and ends it when Redis answers
            poll_until(lambda: not storage.dependency.down, "the outage to end once Redis answers", timeout=10)
            assert changes == [False, True] and storage.check()
            assert strategy.hit(item, "user:a")  # counted in Redis again: a fresh counter there
            assert strategy.get_window_stats(item, "user:a").remaining == 2
            assert "answers again" in caplog.text
        assert strategy.hit(item, "user:b")  # down again: a second outage, a second warning
        assert changes == [False, True, False]
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 2


def test_a_silent_redis_holds_no_request_once_found_silent(tmp_path):
    """A Redis that accepts connections and never answers (SIGSTOP: a network partition)."""
    with RedisServer(tmp_path) as redis:
        storage = build_storage(redis.url(0), None)
        strategy, item = FixedWindowRateLimiter(storage), parse("3/minute")
        assert strategy.hit(item, "user:a") and not storage.dependency.down
        redis.freeze()
        try:
            started = time.monotonic()
            assert strategy.hit(item, "user:a")  # the call that finds it silent waits one timeout, and counts here
            assert time.monotonic() - started < 2 * dependencies.SOCKET_TIMEOUT_SECONDS, "a timeout is not retried"
            assert storage.dependency.down and "Timeout" in storage.dependency.error
            started = time.monotonic()
            assert [strategy.hit(item, "user:a") for _ in range(3)] == [True, True, False]
            assert time.monotonic() - started < dependencies.SOCKET_TIMEOUT_SECONDS, "no request waits any more"
        finally:
            redis.thaw()
        poll_until(lambda: not storage.dependency.down, "the outage to end once Redis answers", timeout=10)


def test_address_never_shows_credentials():
    assert dependencies.address_of("redis://:s3cret@cache.internal:6380/2") == "cache.internal:6380/2"
    assert dependencies.address_of("redis://localhost") == "localhost:6379/0"
