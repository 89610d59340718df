"""Each worker's LRU cache of served model versions: at most ``models.max_models``, least recently used out first.

A lookup on the hot path is a plain dict read. Changing the order or the
membership takes a short lock that is never held while a model loads. An
evicted version is loaded again on its next use.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from app.registry.served import Key, ServedModel


class ServedCache:
    """The versions this worker holds, in least-recently-used order."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self._lock = threading.Lock()  # guards the order and the membership
        self._entries: OrderedDict[Key, ServedModel] = OrderedDict()
        #: The held version under a key, or ``None``: the dict's own ``get``, no call of ours on the hot path.
        self.get: Callable[[Key], ServedModel | None] = self._entries.get

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[ServedModel]:
        with self._lock:
            return list(self._entries.values())

    def touch(self, key: Key, served: ServedModel) -> None:
        """Mark a version as just used: not idle, and last in the eviction order."""
        served.last_used = time.monotonic()
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)

    def add(self, served: ServedModel) -> list[ServedModel]:
        """Hold ``served`` as the most recently used version; return those evicted to make room."""
        evicted: list[ServedModel] = []
        with self._lock:
            self._entries[served.key] = served
            self._entries.move_to_end(served.key)
            while len(self._entries) > self.max_models:
                _, oldest = self._entries.popitem(last=False)
                evicted.append(oldest)
        return evicted

    def remove_if(self, unwanted: Callable[[Key, ServedModel], bool]) -> list[ServedModel]:
        """Drop and return the versions ``unwanted`` selects."""
        with self._lock:
            gone = [(key, served) for key, served in self._entries.items() if unwanted(key, served)]
            for key, _ in gone:
                del self._entries[key]
        return [served for _, served in gone]
