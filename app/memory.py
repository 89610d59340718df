"""Estimate how much memory a loaded model holds, to show per model and per worker."""

from __future__ import annotations

import pickle
from typing import Any


class _CountingWriter:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def estimate_bytes(model: Any, floor: int = 0) -> int:
    """The size of ``model`` serialised with pickle protocol 5 (counted, never stored), at least ``floor``.

    A fitted model's memory is dominated by its arrays and trees, which
    pickle writes out in full: a better estimate than walking Python objects,
    which misses the memory of native extension types (sklearn trees, XGBoost
    boosters). Objects that cannot be pickled get ``floor`` (the file size).
    """
    writer = _CountingWriter()
    try:
        pickle.dump(model, writer, protocol=5)
    except Exception:
        return floor
    return max(writer.size, floor)
