"""Rate limits per identity (key name or JWT subject), else per client address, counted by flask-limiter.

Each view method names its group with ``@requires(..., rate="predict")``; all
methods of a group share one counter per client. flask-limiter's
:class:`~flask_limiter.Limiter` owns the storage (``security.rate_limit_storage``:
``memory://`` counts per worker, ``redis://`` across workers and replicas) and
the strategy (fixed windows); the access check asks its strategy
(``Limiter.limiter``) once per request, with flask-limiter's keys, and the
answer carries flask-limiter's headers (:class:`~flask_limiter.HeaderNames`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Flask
from flask_limiter import HeaderNames, Limiter
from limits import RateLimitItem, parse_many

from app.errors import ApiError

log = logging.getLogger(__name__)


class TooManyRequests(ApiError):
    code = 429


@dataclass(frozen=True, slots=True)
class LimitState:
    """The limit a response reports: its amount, what is left, and when its window ends (epoch seconds)."""

    limit: RateLimitItem
    remaining: int
    reset_at: int

    def headers(self) -> dict[str, str]:
        return {
            HeaderNames.LIMIT.value: str(self.limit.amount),
            HeaderNames.REMAINING.value: str(self.remaining),
            HeaderNames.RESET.value: str(self.reset_at),
            HeaderNames.RETRY_AFTER.value: str(max(0, int(self.reset_at - time.time()))),
        }


class RateLimits:
    """Each group's limits (``security.rate_limits``), counted in the Limiter's storage."""

    def __init__(self, limiter: Limiter, limits: Mapping[str, str], on_breach: Callable[[str, str], None]):
        self.limiter = limiter
        #: Smallest window first, as flask-limiter orders them (its headers report that one unless another breaks).
        self.groups = {group: sorted(parse_many(text)) for group, text in limits.items()}
        self.on_breach = on_breach

    def hit(self, group: str, key: str) -> LimitState:
        """Count one request of ``key`` against ``group``; raise :class:`TooManyRequests` past a limit."""
        strategy = self.limiter.limiter
        items = self.groups[group]
        shown = items[0]
        breached = False
        for item in items:
            if not strategy.hit(item, key, group):
                shown, breached = item, True
                break
        reset, remaining = strategy.get_window_stats(shown, key, group)
        state = LimitState(shown, remaining, int(reset + 1))
        if breached:
            self.on_breach(str(shown), key)
            error = TooManyRequests(f"Rate limit exceeded: {shown} for this client; retry after Retry-After seconds.")
            error.data["headers"] = state.headers()
            raise error
        return state


def build_rate_limits(app: Flask, security: Mapping[str, object], on_breach: Callable[[str, str], None]) -> RateLimits:
    """A Limiter bound to ``app`` for its storage and strategy, and the configured groups."""
    limiter = Limiter(
        key_func=lambda: "",  # keys are the access check's (identity or address), passed with each hit
        storage_uri=str(security["rate_limit_storage"]),
        strategy="fixed-window",
        headers_enabled=False,  # the access check writes the headers of the one limit it counted
    )
    limiter.init_app(app)
    return RateLimits(limiter, security["rate_limits"], on_breach)  # type: ignore[arg-type]
