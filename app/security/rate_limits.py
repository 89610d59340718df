"""Rate limits per identity (key name or JWT subject), else per client address, counted with ``limits``.

Each view method names its group with ``@requires(..., rate="predict")``; all
methods of a group share one counter per client. The access check counts a
request once, against its group, with the ``limits`` library (flask-limiter's
engine): fixed windows, the storage named by ``security.rate_limit_storage``
(``shared-memory://``, the default: across the workers of this machine,
:mod:`app.security.shared_limit_storage`; ``memory://``: per worker,
:mod:`app.security.limit_storage`; ``redis://``: across workers and replicas,
per worker while Redis is unreachable, :mod:`app.security.fallback_storage`),
the storage keys flask-limiter would use, and
flask-limiter's response headers. Why not flask-limiter itself: see the
security guide (its hooks run on every request, limited or not).

An identity may carry its own limits for some groups (a tier: an API key's
``rate_limits``, a JWT's tier claim). They are counted by the same call, in
the same storage, under keys of their own (``LIMITER/tier/...``), so a tiered
identity never shares a counter with the default limits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.dependencies import Outage, address_of, redis_options
from app.errors import ApiError
from app.security.fallback_storage import FallbackStorage
from app.security.limit_storage import SCHEME as IN_PROCESS_SCHEME
from app.security.shared_limit_storage import FILE_NAME as SHARED_FILE_NAME
from app.security.shared_limit_storage import SCHEME as SHARED_SCHEME

log = logging.getLogger(__name__)

#: The embedded default: counters shared by the workers of this machine (:mod:`app.security.shared_limit_storage`).
SHARED_MEMORY_URI = "shared-memory://"

#: The response headers, named as flask-limiter names them.
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"
RETRY_AFTER_HEADER = "Retry-After"
#: The first part of a tier's storage keys; the default limits' keys start with the client key
#: (``user:...`` or ``addr:...``), so the two can never name the same counter.
TIER_SCOPE = "tier"


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
        self.groups = {group: limits_of(text) for group, text in limits.items()}
        self.on_breach = on_breach

    def hit(self, group: str, key: str, tier: Mapping[str, str] | None = None) -> LimitState:
        """Count one request of ``key`` against ``group``; raise :class:`TooManyRequests` past a limit.

        ``tier`` is the identity's own limits: when it names ``group``, they replace the group's.
        """
        strategy = self.strategy
        own = tier.get(group) if tier else None
        if own is None:
            items, scope = self.groups[group], (key, group)
        else:
            items, scope = limits_of(own), (TIER_SCOPE, key, group)
        shown = items[0]
        breached = False
        for item in items:
            if not strategy.hit(item, *scope):
                shown, breached = item, True
                break
        reset, remaining = strategy.get_window_stats(shown, *scope)
        state = LimitState(shown, remaining, int(reset + 1))
        if breached:
            self.on_breach(str(shown), key)
            error = TooManyRequests(f"Rate limit exceeded: {shown} for this client; retry after Retry-After seconds.")
            error.data["headers"] = dict(state.headers())
            raise error
        return state


@lru_cache(maxsize=1024)
def limits_of(text: str) -> tuple[RateLimitItem, ...]:
    """A rate such as ``10/second;1000/minute`` parsed once (tiers repeat), smallest window first:
    the headers report that one unless another is exceeded."""
    return tuple(sorted(parse_many(text)))


def build_rate_limits(
    security: Mapping[str, object],
    on_breach: Callable[[str, str], None],
    state_directory: Path | None = None,
    on_storage_change: Callable[[bool], None] | None = None,
) -> RateLimits:
    """The configured groups, counted in the configured storage.

    ``shared-memory://`` lives in ``state_directory``; a ``redis://`` storage
    falls back to per-worker counting while Redis is unreachable, calling
    ``on_storage_change(False)`` then ``(True)`` when it returns.
    """
    uri = str(security["rate_limit_storage"])
    return RateLimits(
        build_storage(uri, state_directory, on_storage_change),
        security["rate_limits"],  # type: ignore[arg-type]
        on_breach,
    )


def build_storage(uri: str, state_directory: Path | None, on_change: Callable[[bool], None] | None = None) -> Storage:
    """The storage a ``security.rate_limit_storage`` URI names, through limits' ``storage_from_string``."""
    if uri == "memory://":
        return storage_from_string(f"{IN_PROCESS_SCHEME}://")
    if uri == SHARED_MEMORY_URI:
        path = Path(state_directory or ".") / SHARED_FILE_NAME
        try:
            return storage_from_string(f"{SHARED_SCHEME}://{path.resolve()}")
        except OSError as exc:  # a read-only or full disk: limits still hold, per worker
            log.warning("rate limits: cannot map %s (%s); counting per worker", path, exc)
            return storage_from_string(f"{IN_PROCESS_SCHEME}://")
    primary = storage_from_string(uri, **redis_options())
    outage = Outage("redis", address_of(uri), "rate limits", "counting limits per worker", primary.check, on_change)
    return FallbackStorage(primary, outage)
