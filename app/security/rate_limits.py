"""Rate limits with flask-limiter: per identity (key name / JWT subject), else per client address.

Each view method names its group with ``@requires(..., rate="predict")``;
all methods of a group share one counter per client. With ``memory://`` the
counters are per worker; ``redis://`` makes them hold across workers and replicas.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.security.policy import RATE_ATTR

log = logging.getLogger(__name__)


#: The scheme of :class:`LeanMemoryStorage`, used when the configuration says ``memory://``.
LEAN_MEMORY = "modelserve-memory"


def _lean_memory_storage() -> type:
    """limits' MemoryStorage without a timer thread per burst of hits (created on first use).

    MemoryStorage starts a ``threading.Timer`` (a new thread) whenever a hit
    finds the previous one finished: about a hundred thread starts a second
    under steady load, each costing more than the hit itself. Expired counters
    are already ignored when read; here they are also swept inline, at most
    once a second, by the hit that finds the sweep due.
    """
    from limits.storage import MemoryStorage

    class LeanMemoryStorage(MemoryStorage):
        STORAGE_SCHEME = [LEAN_MEMORY]  # registers the scheme with limits

        def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
            super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
            self._next_sweep = 0.0

        def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the timer-thread scheduler
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + 1.0
                self._MemoryStorage__expire_events()

    return LeanMemoryStorage


def rate_limit_key() -> str:
    user = g.get("user_id")
    return f"user:{user}" if user else f"addr:{request.remote_addr or '-'}"


def register_rate_limits(app: Flask, security: dict[str, Any]) -> Any:
    """Attach a Limiter and apply each group's limit to the view methods that declared it."""
    if security["trusted_proxies"]:
        n = security["trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    if not security["rate_limit_enabled"]:
        return None
    from flask_limiter import Limiter

    def breached(limit: Any) -> None:
        from app.metrics import count_rate_limit_rejection

        log.warning("rate limit %s exceeded for %s", limit.limit, rate_limit_key())
        count_rate_limit_rejection()

    storage_uri = security["rate_limit_storage"]
    if storage_uri == "memory://":
        _lean_memory_storage()
        storage_uri = f"{LEAN_MEMORY}://"
    limiter = Limiter(
        key_func=rate_limit_key,
        storage_uri=storage_uri,
        headers_enabled=True,
        strategy="fixed-window",
        on_breach=breached,
        swallow_errors=False,
    )
    limiter.init_app(app)
    limits = security["rate_limits"]
    for endpoint, view in list(app.view_functions.items()):
        view_class = getattr(view, "view_class", None)
        if view_class is None:
            continue
        for method in view_class.methods or ():
            group = getattr(getattr(view_class, method.lower(), None), RATE_ATTR, None)
            if group:
                app.view_functions[endpoint] = limiter.shared_limit(limits[group], scope=group, methods=[method])(
                    app.view_functions[endpoint]
                )
    return limiter


class FixedWindowCounter:
    """One group's fixed-window limit, counted in flask-limiter's storage under flask-limiter's keys.

    For :mod:`app.fast_predict`, which answers predictions without Flask: the same
    counts and headers as the Limiter's, in a few dictionary lookups and one
    storage increment.
    """

    def __init__(self, limiter: Any, group: str, text: str):
        from limits import parse_many

        # app.security.rate_limits creates the Limiter with fixed windows and no key prefix.
        items = parse_many(text)
        if len(items) != 1:
            raise ValueError(f"rate limit {text!r} of {group!r} is not a single limit")
        self.item = items[0]
        self.group = group
        self.storage = limiter.storage
        self.expiry = self.item.get_expiry()
        self.amount = str(self.item.amount)
        self._resets: dict[str, float] = {}
        self._storage_keys: dict[str, str] = {}

    def hit(self, key: str) -> tuple[bool, list[tuple[str, str]]]:
        storage_key = self._storage_keys.get(key)
        if storage_key is None:  # limits builds it from four parts on every call
            if len(self._storage_keys) > 10_000:
                self._storage_keys.clear()
            storage_key = self._storage_keys[key] = self.item.key_for(key, self.group)
        count = self.storage.incr(storage_key, self.expiry)
        now = time.time()
        reset = self._resets.get(storage_key)
        if reset is None or count == 1 or reset <= now:  # a new window: ask the storage when it ends
            reset = self.storage.get_expiry(storage_key)
            if len(self._resets) > 10_000:
                self._resets.clear()
            self._resets[storage_key] = reset
        reset_at = int(reset + 1)
        headers = [
            ("X-RateLimit-Limit", self.amount),
            ("X-RateLimit-Remaining", str(max(0, self.item.amount - count))),
            ("X-RateLimit-Reset", str(reset_at)),
            ("Retry-After", str(int(reset_at - now))),
        ]
        return count <= self.item.amount, headers
