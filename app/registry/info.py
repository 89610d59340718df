"""What the registry says about a model version: ``/models`` entries, ``/models/{name}/info``, hook info.

The ``model_loaded`` hook gets the same mapping ``GET /api/v1/models/{name}/info``
returns, so both are built here, from the few lookups :class:`RegistryView` names.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from app import model_memory
from app.desired_state import DesiredState, ModelRecord, ModelState
from app.model_input import signature_of
from app.registry.served import ServedModel


class RegistryView(Protocol):
    """What these summaries read of a registry (:class:`~app.registry.serving.ServingRegistry` has it)."""

    def loaded(self, name: str, version: int | None = None) -> ServedModel | None: ...

    def aliases_of(self, name: str) -> dict[str, int | None]: ...

    def snapshot(self) -> DesiredState: ...


def _plain(values: Any) -> list[Any] | None:
    if values is None:
        return None
    return [v.item() if hasattr(v, "item") else v for v in values]


def version_summary(registry: RegistryView, model: ModelState, record: ModelRecord) -> dict[str, Any]:
    return {
        "version": record.version,
        "file": record.file,
        "sha256": record.sha256,
        "size_bytes": record.size_bytes,
        "registered_at": record.registered_at,
        "origin": record.origin,
        "current": record.version == model.current,
        "loaded": registry.loaded(model.name, record.version) is not None,
    }


def model_summary(registry: RegistryView, model: ModelState) -> dict[str, Any]:
    record = model.current_record
    served = registry.loaded(model.name)
    return {
        "name": model.name,
        "version": model.current,
        "versions": sorted(model.versions),
        "adapter": record.model_type,
        "task": served.description.task if served else None,
        "file": record.file,
        "description": record.metadata.get("description"),
        "aliases": sorted(registry.aliases_of(model.name)),
        "loaded": served is not None,
        "memory_bytes": served.memory_bytes if served else None,
    }


def memory_of(served: ServedModel, mappings: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """How the version's memory is shared and what it costs this worker (``mappings``: read now if not given)."""
    if mappings is None and served.sharing.mode == "mapped_file":
        mappings = model_memory.file_mappings()
    return model_memory.model_memory(served.sharing, served.memory_bytes, mappings)


def model_info(registry: RegistryView, served: ServedModel) -> dict[str, Any]:
    """Everything about one loaded version, and the list of its model's versions."""
    record, desc = served.record, served.description
    model = registry.snapshot().models.get(record.name)
    feature_names = record.metadata.get("feature_names") or _plain(desc.feature_names)
    classes = _plain(desc.classes)
    info = model_summary(registry, model) if model else {"name": record.name}
    info.update(
        {
            "version": record.version,
            "current": model is not None and model.current == record.version,
            "adapter": record.model_type,
            "task": desc.task,
            "file": record.file,
            "loaded": True,
            "memory_bytes": served.memory_bytes,
            "memory": memory_of(served),
            "model_class": desc.model_class,
            "n_features": desc.n_features,
            "feature_names": feature_names,
            "classes": classes,
            "labels": record.metadata.get("labels") or ([str(c) for c in classes] if classes else None),
            "sha256": record.sha256,
            "size_bytes": record.size_bytes,
            "registered_at": record.registered_at,
            "origin": record.origin,
            "loaded_at": served.loaded_at,
            "load_seconds": served.load_seconds,
            "prediction_count": served.prediction_count,
            "worker_pid": os.getpid(),
            "training": record.metadata.get("training"),
            "version_mismatch": served.version_mismatch or None,
            "metadata": record.metadata,
            "details": dict(desc.extra),
            "signature": signature_of(served).as_dict(),
            "version_history": [version_summary(registry, model, r) for _, r in sorted(model.versions.items())]
            if model
            else [],
        }
    )
    return info
