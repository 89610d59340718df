"""The services modelserve depends on (Redis), and how a worker behaves while one is unreachable.

A lost dependency degrades the server; it never fails predictions. Each use of
Redis (the rate limits, the registry's shared state, the job store) keeps an
:class:`Outage` record: it logs one warning when the outage starts and one line
when it ends (per worker, not per request), and health reports it by name.

Clients are built with :func:`redis_options`: they fail fast (a refused
connection is one quick error, retried once for a pooled connection that a
restarted Redis closed; a silent one is one timeout, never retried) instead of
redis-py's default of ten retries with back-off, which would hold every
request for seconds while Redis is away. Once a call failed, requests stop
using the dependency: a thread of the worker asks it once a second and ends the
outage when it answers. So a Redis that is silent rather than gone (a network
partition) costs the requests in flight when it fell silent one timeout each,
and no request after them waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: Seconds to wait for a connection to Redis, and for an answer on one.
CONNECT_TIMEOUT_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 2.0
#: While a dependency is down, a worker asks it this often (requests never wait for it meanwhile).
RETRY_EVERY_SECONDS = 1.0


def redis_options() -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` (and limits' Redis storage): fail fast, retry once."""
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError
    from redis.retry import Retry

    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        # A closed connection is worth one more try; a timeout is not: it would double every wait.
        "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
    }


def address_of(url: str) -> str:
    """``host:port/db`` of a Redis URL: never its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


class Outage:
    """Whether one use of a dependency answers, as this worker last found it; logs each outage once.

    Callers skip the dependency while it is :attr:`down` and report each call's
    outcome (:meth:`failed`, :meth:`answered`). While it is down, a daemon
    thread asks ``probe`` once every :data:`RETRY_EVERY_SECONDS` and ends the
    outage when it answers.
    """

    def __init__(
        self,
        name: str,
        address: str,
        used_for: str,
        consequence: str,
        probe: Callable[[], bool],
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.name, self.address, self.used_for = name, address, used_for
        #: What the worker does meanwhile, for the warning ("counting limits per worker").
        self.consequence = consequence
        self.probe = probe
        self.on_change = on_change
        self.down_since: float | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> None:
        """Record a failed call; the first of an outage logs a warning (its error is what health reports)
        and starts asking the dependency in the background."""
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
            self.error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning(
            "%s: %s at %s is unreachable (%s); %s until it answers again",
            self.used_for,
            self.name,
            self.address,
            self.error,
            self.consequence,
        )
        threading.Thread(
            target=_ask_until_it_answers, args=(weakref.ref(self),), name=f"outage-{self.used_for}", daemon=True
        ).start()
        if self.on_change is not None:
            self.on_change(False)

    def answered(self) -> None:
        """Record a call that worked; ends an outage (logged once)."""
        if self.down_since is None:
            return
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is None:
            return
        log.warning(
            "%s: %s at %s answers again after %.1f s",
            self.used_for,
            self.name,
            self.address,
            time.monotonic() - since,
        )
        if self.on_change is not None:
            self.on_change(True)

    def report(self, reachable: bool | None = None) -> dict[str, Any]:
        """What health says about it; ``reachable`` is a check made just now, if any."""
        up = not self.down if reachable is None else reachable
        entry: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "used_for": self.used_for,
            "status": "healthy" if up else "unhealthy",
        }
        if not up:
            entry["error"] = self.error or "unreachable"
            entry["consequence"] = self.consequence
        return entry


def _ask_until_it_answers(ref: weakref.ReferenceType[Outage]) -> None:
    """The outage's thread: it ends with the outage, or when nothing uses the dependency any more."""
    while True:
        time.sleep(RETRY_EVERY_SECONDS)
        outage = ref()
        if outage is None or not outage.down:
            return
        try:
            answers = outage.probe()
        except Exception:  # a probe that raises says no; it never ends the thread that asks it
            answers = False
        if answers:
            outage.answered()
        del outage
