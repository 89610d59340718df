"""What the API says about a model: the ``/models`` list entries and ``/models/{name}/info``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from app.state_store import ModelRecord

if TYPE_CHECKING:
    from app.registry import ModelRegistry


def _plain(values: Any) -> list[Any] | None:
    if values is None:
        return None
    return [v.item() if hasattr(v, "item") else v for v in values]


def model_summary(registry: ModelRegistry, record: ModelRecord) -> dict[str, Any]:
    served = registry.loaded(record.name)
    return {
        "name": record.name,
        "version": record.metadata.get("version", "1"),
        "adapter": record.model_type,
        "task": served.description.task if served else None,
        "file": record.file,
        "description": record.metadata.get("description"),
        "aliases": registry.aliases_of(record.name),
        "loaded": served is not None,
    }


def model_info(registry: ModelRegistry, record: ModelRecord) -> dict[str, Any]:
    served = registry.loaded(record.name)
    info = model_summary(registry, record)
    desc = served.description if served else None
    feature_names = record.metadata.get("feature_names") or (_plain(desc.feature_names) if desc else None)
    classes = _plain(desc.classes) if desc else None
    info.update(
        {
            "model_class": desc.model_class if desc else None,
            "n_features": desc.n_features if desc else None,
            "feature_names": feature_names,
            "classes": classes,
            "labels": record.metadata.get("labels") or ([str(c) for c in classes] if classes else None),
            "sha256": record.sha256,
            "size_bytes": record.size_bytes,
            "registered_at": record.registered_at,
            "origin": record.origin,
            "loaded_at": served.loaded_at if served else None,
            "prediction_count": served.prediction_count if served else 0,
            "worker_pid": os.getpid(),
            "training": record.metadata.get("training"),
            "details": dict(desc.extra) if desc else {},
        }
    )
    return info
