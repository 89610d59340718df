"""Client threads that predict until the ``with`` block ends: the steady load a chaos test runs its fault under."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self


class BackgroundClients:
    """One thread per entry of ``clients`` (its arguments to :meth:`_client`), counting ``outcomes``.

    Subclasses say what one client does in :meth:`_client`, looping until ``_stop`` is set.
    """

    #: Seconds to wait for each client's last request once the block ends.
    join_timeout = 60.0

    def __init__(self, clients: Sequence[tuple[Any, ...]]) -> None:
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=args, daemon=True) for args in clients]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.join_timeout)

    def total(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def _client(self, *args: Any) -> None:
        raise NotImplementedError
