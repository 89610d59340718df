"""Rate limits that outlive their Redis: counted per worker while it is unreachable, back in Redis when it returns.

A limit storage that raises would turn every limited request into a 500
(flask-limiter's ``in_memory_fallback`` answers the same need). This wrapper
is itself a ``limits`` storage: it passes each call to the configured one
and, when that one fails, records the outage (one warning per worker, a
metric through ``on_change``) and counts in a per-worker
:class:`~app.security.limit_storage.InProcessStorage` instead. While down no
request asks the configured storage; the outage's thread does, once a second,
and the counting goes back to it as soon as it answers.
"""

from __future__ import annotations

from typing import Any

from limits.storage import Storage

from app.dependencies import Outage
from app.security.limit_storage import InProcessStorage


class FallbackStorage(Storage):
    """``primary`` while it answers, a per-worker storage while it does not."""

    STORAGE_SCHEME = None  # built by build_rate_limits, never from a URI

    def __init__(self, primary: Storage, dependency: Outage) -> None:
        super().__init__(None)
        self.primary = primary
        self.fallback = InProcessStorage()
        self.dependency = dependency

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError  # the primary's failures never leave this class

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        if not self.dependency.down:
            try:
                count = self.primary.incr(key, expiry, amount)
            except self.primary.base_exceptions as exc:
                self.dependency.failed(exc)
            else:
                self.dependency.answered()
                return count
        return self.fallback.incr(key, expiry, amount)

    def get(self, key: str) -> int:
        return self._read("get", key)

    def get_expiry(self, key: str) -> float:
        return self._read("get_expiry", key)

    def _read(self, method: str, key: str) -> Any:
        """The primary's answer while it is up, else the per-worker storage's."""
        if not self.dependency.down:
            try:
                return getattr(self.primary, method)(key)
            except self.primary.base_exceptions as exc:
                self.dependency.failed(exc)
        return getattr(self.fallback, method)(key)

    def check(self) -> bool:
        """Whether the configured storage answers now (health asks)."""
        try:
            return bool(self.primary.check())
        except Exception:
            return False

    ping = check

    def reset(self) -> int | None:
        self.fallback.reset()
        return self.primary.reset()

    def clear(self, key: str) -> None:
        self.fallback.clear(key)
        self.primary.clear(key)
