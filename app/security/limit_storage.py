"""``memory://`` rate-limit counters: fixed windows in this process, through the ``limits`` storage interface.

limits' own ``MemoryStorage`` expires its counters from a timer thread that
it starts again every ten milliseconds while requests arrive: a thread start
and a GIL hand-over beside nearly every request. Here a counter whose window
has ended is simply replaced by the next hit, and ended windows are swept
from the hit path at most once a second, so the dictionary stays as large as
the clients of the last minute or so.

Fixed windows only (the strategy modelserve uses); counts are per process, as
with limits' memory storage: ``redis://`` shares them between processes.
"""

from __future__ import annotations

import threading
import time

from limits.storage import Storage

SCHEME = "modelserve-memory"
SWEEP_EVERY_SECONDS = 1.0


class InProcessStorage(Storage):
    """Counters with their window's end, in one dict under one lock."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._counters: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError  # nothing here fails for outside reasons

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            count, ends = self._counters.get(key, (0, 0.0))
            if ends <= now:  # the window ended: a new one starts with this hit
                count, ends = 0, now + expiry
            count += amount
            self._counters[key] = (count, ends)
            return count

    def get(self, key: str) -> int:
        count, ends = self._counters.get(key, (0, 0.0))
        return count if ends > time.time() else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        count, ends = self._counters.get(key, (0, now))
        return ends if ends > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._counters)
            self._counters.clear()
        return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_EVERY_SECONDS
        ended = [key for key, (_, ends) in self._counters.items() if ends <= now]
        for key in ended:
            del self._counters[key]
