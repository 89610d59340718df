"""A model version held in a worker's memory, and the key the registry files it under.

Inference, the jobs and the API type what they serve with :class:`ServedModel`;
it lives apart from the registry's machinery so that reading it needs none of it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.adapters import LoadedModel, ModelDescription, ModelSharing
from app.desired_state import ModelRecord
from app.signature import Signature

Key = tuple[str, int]  # (model name, version)


@dataclass
class ServedModel:
    """One model version held in this worker's memory, with what the API reports about it."""

    record: ModelRecord
    model: LoadedModel
    description: ModelDescription
    loaded_at: str
    labels: list[str] | None
    predict_proba: Any = None
    memory_bytes: int = 0
    load_seconds: float = 0.0
    version_mismatch: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Whether the workers of this machine share the model's memory (what its adapter said).
    sharing: ModelSharing = field(default_factory=lambda: ModelSharing.private("not known"))
    #: Its columns and what each accepts (:mod:`app.signature`), probed when it loaded.
    signature: Signature | None = None
    prediction_count: int = 0
    last_used: float = field(default_factory=time.monotonic)
    #: Per-version values the hot path derives once (label table, class positions).
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def key(self) -> Key:
        return (self.record.name, self.record.version)

    def count(self, rows: int) -> None:
        with self._count_lock:
            self.prediction_count += rows
