"""``GET /api/v1/status``: what an operator wants on one page, secrets masked."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import __version__, model_memory, system_stats
from app.inference import utc_timestamp
from app.metrics import Metrics
from app.registry import ModelRegistry
from app.registry.info import memory_of

log = logging.getLogger(__name__)

#: A configuration key containing one of these words holds a secret.
SECRET_WORDS = ("secret", "password", "token", "key")
#: ... except these, which only name things.
NOT_SECRET = frozenset({"api_key_header"})
MASK = "********"


def mask_secrets(tree: Any, key: str = "") -> Any:
    """A copy of ``tree`` with the value of every secret-looking key replaced by ``********``."""
    if key and key not in NOT_SECRET and any(word in key.lower() for word in SECRET_WORDS):
        return MASK if tree not in (None, "", [], {}) else tree
    if isinstance(tree, Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [mask_secrets(item) for item in tree]
    return tree


def status_report(registry: ModelRegistry, settings: Mapping[str, Any], metrics: Metrics | None) -> dict[str, Any]:
    started = system_stats.server_started_at()
    return {
        "version": __version__,
        "environment": settings["environment"],
        "timestamp": utc_timestamp(),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "uptime_seconds": round(max(time.time() - started, 0.0), 3),
        "worker_pid": os.getpid(),
        "workers": settings["api"]["workers"],
        **_models_and_memory(registry, settings),
        "counts": metrics.totals() if metrics is not None else None,
        "jobs": _jobs(),
        "config": mask_secrets(settings),
        "compute_threads": compute_threads(),
    }


def compute_threads() -> list[dict[str, Any]]:
    """The native thread pools loaded in this worker and their sizes (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "num_threads", "version", "filepath")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def _models_and_memory(registry: ModelRegistry, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Each loaded model with its memory, and this worker's model memory in all (one read of smaps)."""
    try:
        registry.state()  # follow the shared state first: a version deleted or replaced elsewhere leaves now
    except Exception:  # the store is down: what this worker holds is still worth reporting
        log.warning("status: the shared state could not be read; reporting this worker's models as they are")
    mappings = model_memory.file_mappings()
    entries = [_model_entry(served, mappings) for served in registry.loaded_models()]
    shared_dir = Path(settings["registry"]["state_directory"]) / "shared-models"
    memory = {
        **model_memory.totals(entry["memory"] for entry in entries),
        "source": "smaps" if mappings is not None else "estimate",
        "mapped_layouts": model_memory.mapped_layouts(shared_dir, mappings),
    }
    return {"models": entries, "model_memory": memory}


def _model_entry(served: Any, mappings: dict[str, dict[str, int]] | None) -> dict[str, Any]:
    entry = {
        "name": served.name,
        "version": served.version,
        "loaded_at": served.loaded_at,
        "prediction_count": served.prediction_count,
        "memory": memory_of(served, mappings),
    }
    memory = getattr(served, "memory_bytes", None)
    if memory:
        entry["memory_bytes"] = memory
    return entry


def _jobs() -> dict[str, Any] | None:
    """Job queue depth and counts by state, when the jobs service exists and its store answers."""
    by_state = job_counts()
    if by_state is None:
        return None
    return {"queue_depth": by_state.get("queued", 0), "by_state": by_state}


def job_counts() -> dict[str, int] | None:
    """Jobs by state; None without jobs, or while the job store does not answer (status and metrics still do)."""
    from app.jobs.errors import JobStoreUnavailable
    from app.services import services

    jobs = services().jobs
    try:
        return jobs.counts_by_state() if jobs is not None else None
    except JobStoreUnavailable:
        return None
