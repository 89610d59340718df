"""Rate limits per identity (key name or JWT subject), else per client address, counted with ``limits``.

Each view method names its group with ``@requires(..., rate="predict")``; all
methods of a group share one counter per client. The access check counts a
request once, against its group, with the ``limits`` library (flask-limiter's
engine): fixed windows, the storage named by ``security.rate_limit_storage``
(``memory://``: per worker, :mod:`app.security.limit_storage`; ``redis://``:
across workers and replicas), the storage keys flask-limiter would use, and
flask-limiter's response headers. Why not flask-limiter itself: see the
security guide (its hooks run on every request, limited or not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.errors import ApiError
from app.security.limit_storage import SCHEME as IN_PROCESS_SCHEME

#: The response headers, named as flask-limiter names them.
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"
RETRY_AFTER_HEADER = "Retry-After"


class TooManyRequests(ApiError):
    code = 429


@dataclass(frozen=True, slots=True)
class LimitState:
    """The limit a response reports: its amount, what is left, and when its window ends (epoch seconds)."""

    limit: RateLimitItem
    remaining: int
    reset_at: int

    def headers(self) -> list[tuple[str, str]]:
        return [
            (LIMIT_HEADER, str(self.limit.amount)),
            (REMAINING_HEADER, str(self.remaining)),
            (RESET_HEADER, str(self.reset_at)),
            (RETRY_AFTER_HEADER, str(max(0, int(self.reset_at - time.time())))),
        ]


class RateLimits:
    """Each group's limits (``security.rate_limits``), counted in one storage."""

    def __init__(self, storage: Storage, limits: Mapping[str, str], on_breach: Callable[[str, str], None]):
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(storage)
        #: Smallest window first: the headers report that one unless another is exceeded.
        self.groups = {group: sorted(parse_many(text)) for group, text in limits.items()}
        self.on_breach = on_breach

    def hit(self, group: str, key: str) -> LimitState:
        """Count one request of ``key`` against ``group``; raise :class:`TooManyRequests` past a limit."""
        strategy = self.strategy
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
            error.data["headers"] = dict(state.headers())
            raise error
        return state


def build_rate_limits(security: Mapping[str, object], on_breach: Callable[[str, str], None]) -> RateLimits:
    """The configured groups, counted in the configured storage."""
    uri = str(security["rate_limit_storage"])
    storage = storage_from_string(f"{IN_PROCESS_SCHEME}://" if uri == "memory://" else uri)
    return RateLimits(storage, security["rate_limits"], on_breach)  # type: ignore[arg-type]
