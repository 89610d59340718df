"""The model registry: a per-worker cache of loaded models that converges on the
shared desired state in :mod:`app.state_store`.

Contract: once ``load`` returns in one worker, every later request in any
worker sees the model (a worker that has not loaded it yet loads it before
answering); once ``unload`` returns, no worker serves it. Workers notice
changes by reading the store's generation counter at most every
``registry.sync_interval_ms``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.adapters import LoadedModel, ModelAdapter, ModelDescription
from app.errors import ApiError, Conflict, ModelLimitReached, ModelLoadError, ModelNotFound, ValidationFailed
from app.model_files import (
    is_sidecar,
    read_sidecar,
    relative_to_model_dir,
    resolve_model_path,
    sha256_of,
)
from app.plugin_manager import PluginSet
from app.state_store import ModelRecord, SQLiteStateStore, utc_now

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "default"


@dataclass
class ServedModel:
    """A model held in this worker's memory, with what the API reports about it."""

    record: ModelRecord
    model: LoadedModel
    description: ModelDescription
    loaded_at: str
    labels: list[str] | None
    predict_proba: Any = None
    prediction_count: int = 0
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> str:
        return self.record.metadata.get("version", "1")

    def count(self, rows: int) -> None:
        with self._count_lock:
            self.prediction_count += rows


class ModelRegistry:
    """Loads, serves and unloads models for one worker, in step with the shared store."""

    def __init__(
        self, store: SQLiteStateStore, plugins: PluginSet, models_config: Mapping[str, Any], sync_interval_ms: int
    ):
        self.store = store
        self.plugins = plugins
        self.model_dir = Path(models_config["model_directory"])
        self.max_models: int = models_config["max_models"]
        self.default_model: str = models_config["default_model"]
        self.auto_load: bool = models_config["auto_load"]
        self._sync_interval = sync_interval_ms / 1000
        self._lock = threading.RLock()
        self._cache: dict[str, ServedModel] = {}
        self._records: dict[str, ModelRecord] = {}
        self._generation = -1
        self._checked_at = 0.0
        self._warmed = False
        #: Loads that failed in this worker, by (name, sha256): not retried on every request.
        self._failed: dict[tuple[str, str], ApiError] = {}

    # --- start-up --------------------------------------------------------

    def warm(self) -> None:
        """Register the model directory's files (if ``auto_load``) and load every desired model.

        Idempotent and cheap after the first call; gunicorn calls it in each
        worker after fork, the first request calls it otherwise.
        """
        if self._warmed:
            return
        with self._lock:
            if self._warmed:
                return
            prepared = self._register_directory() if self.auto_load else {}
            self.sync(force=True)
            for name, served in prepared.items():
                wanted = self._records.get(name)
                if wanted is not None and (wanted.file, wanted.sha256) == (served.record.file, served.record.sha256):
                    served.record = wanted
                    self._install(served, "replaced")
            for name in list(self._records):
                try:
                    self._ensure_loaded(name)
                except ApiError as exc:
                    log.error("model %s could not be loaded: %s", name, exc.description)
            self._warmed = True

    def _register_directory(self) -> dict[str, ServedModel]:
        """Register the directory's loadable files; return the models loaded to check them.

        A file is registered only after it loaded and passed a trial prediction
        here, so a broken file never takes a place in the shared state.
        """
        prepared: dict[str, ServedModel] = {}
        if not self.model_dir.is_dir():
            log.warning("model directory %s does not exist; no model auto-loaded", self.model_dir)
            return prepared
        suffixes = self.plugins.by_suffix
        files = sorted(
            p
            for p in self.model_dir.iterdir()
            if p.is_file() and not p.name.startswith((".", "_")) and not is_sidecar(p) and p.suffix.lower() in suffixes
        )
        for path in files:
            try:
                record = self._record_for(path.name, None, origin="auto_load", name=None)
                if record.metadata.get("auto_load") is False:
                    continue
                served = self._instantiate(record)
            except ApiError as exc:
                log.error("not auto-loading %s: %s", path.name, exc.description)
                continue
            if self.store.put(record, max_models=self.max_models, only_if_new_or_same_file=True):
                prepared[record.name] = served
            else:
                log.warning(
                    "not auto-loading %s as %s: max_models (%d) reached, name taken by another file, "
                    "or unloaded through the API",
                    path.name,
                    record.name,
                    self.max_models,
                )
        return prepared

    # --- the shared state --------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Drop cached models the shared state no longer wants; cheap when nothing changed.

        The published generation (shared memory) is compared with the one this
        worker last read from the store, on every call unless
        ``sync_interval_ms`` throttles it.
        """
        if not force:
            if self._sync_interval:
                now = time.monotonic()
                if now - self._checked_at < self._sync_interval:
                    return
                self._checked_at = now
            if self.store.published_generation() == self._generation:
                return
        with self._lock:
            generation = self.store.generation()
            records = self.store.records()
            for name, served in list(self._cache.items()):
                wanted = records.get(name)
                if wanted is None or wanted.sha256 != served.record.sha256 or wanted.file != served.record.file:
                    self._drop(name, "deleted" if wanted is None else "replaced")
            self._records = records
            self._generation = generation

    def _drop(self, name: str, reason: str) -> None:
        if self._cache.pop(name, None) is not None:
            self.plugins.manager.hook.model_unloaded(name=name, reason=reason)
            log.info("model %s unloaded (%s)", name, reason)

    # --- lookups ----------------------------------------------------------

    def resolve_name(self, name: str) -> str:
        if name == DEFAULT_ALIAS and DEFAULT_ALIAS not in self._records:
            return self.default_model
        return name

    def get(self, name: str) -> ServedModel:
        """Return the model to predict with, loading it first if this worker has not yet."""
        self.warm()
        self.sync()
        resolved = self.resolve_name(name)
        served = self._cache.get(resolved)
        if served is not None:
            return served
        if resolved not in self._records:
            self.sync(force=True)
            if resolved not in self._records:
                raise ModelNotFound(name)
        return self._ensure_loaded(resolved)

    def records(self) -> dict[str, ModelRecord]:
        self.warm()
        self.sync()
        return dict(self._records)

    def loaded(self, name: str) -> ServedModel | None:
        return self._cache.get(name)

    def aliases_of(self, name: str) -> list[str]:
        return [DEFAULT_ALIAS] if name != DEFAULT_ALIAS and self.resolve_name(DEFAULT_ALIAS) == name else []

    # --- changes ----------------------------------------------------------

    def load(self, name: str, requested_path: str, model_type: str | None) -> ServedModel:
        """Load a file as ``name`` for every worker; the previous model keeps serving if this fails."""
        self.warm()
        record = self._record_for(requested_path, model_type, origin="api", name=name)
        served = self._instantiate(record)
        with self._lock:
            if not self.store.put(record, max_models=self.max_models):
                raise ModelLimitReached(f"max_models ({self.max_models}) models are already loaded; delete one first.")
            self.sync(force=True)
            self._install(served, "replaced")
        return served

    def unload(self, name: str) -> None:
        self.warm()
        if not self.store.remove(name):
            raise ModelNotFound(name)
        with self._lock:
            self.sync(force=True)

    # --- loading ----------------------------------------------------------

    def _record_for(self, requested: str, model_type: str | None, *, origin: str, name: str | None) -> ModelRecord:
        path = resolve_model_path(self.model_dir, requested)
        metadata = read_sidecar(path)
        digest = sha256_of(path)
        if metadata.get("sha256") and metadata["sha256"] != digest:
            raise ModelLoadError(
                f"{path.name} does not match the sha256 in its metadata file "
                f"(expected {metadata['sha256'][:12]}..., found {digest[:12]}...)."
            )
        adapter = self._choose_adapter(path, model_type or metadata.get("model_type"))
        return ModelRecord(
            name=name or metadata.get("name") or path.stem,
            file=relative_to_model_dir(self.model_dir, path),
            model_type=adapter.name,
            sha256=digest,
            size_bytes=path.stat().st_size,
            metadata=metadata,
            origin=origin,
            registered_at=utc_now(),
        )

    def _choose_adapter(self, path: Path, model_type: str | None) -> ModelAdapter:
        adapters = self.plugins.adapters
        if model_type:
            if model_type not in adapters:
                raise ValidationFailed(
                    f"Unknown model_type '{model_type}'. Installed types: {', '.join(sorted(adapters))}.",
                    errors={"json": {"model_type": [f"Must be one of: {', '.join(sorted(adapters))}."]}},
                )
            return adapters[model_type]
        name = self.plugins.by_suffix.get(path.suffix.lower())
        if name is None:
            known = ", ".join(sorted(self.plugins.by_suffix))
            raise ValidationFailed(
                f"No adapter handles '{path.suffix}' files (known: {known}); pass model_type "
                f"(one of: {', '.join(sorted(adapters))})."
            )
        return adapters[name]

    def _ensure_loaded(self, name: str) -> ServedModel:
        with self._lock:
            served = self._cache.get(name)
            if served is not None:
                return served
            record = self._records[name]
            failure = self._failed.get((name, record.sha256))
            if failure is not None:
                raise failure
            try:
                path = resolve_model_path(self.model_dir, record.file)
                if sha256_of(path) != record.sha256:
                    raise Conflict(
                        f"The file of model '{name}' ({record.file}) changed on disk since it was loaded; "
                        "load it again to serve the new file."
                    )
                served = self._instantiate(record)
            except ApiError as exc:
                self._failed[(name, record.sha256)] = exc
                raise
            self._install(served, "replaced")
            return served

    def _instantiate(self, record: ModelRecord) -> ServedModel:
        adapter = self.plugins.adapters.get(record.model_type)
        if adapter is None:
            raise ModelLoadError(f"The adapter '{record.model_type}' for model '{record.name}' is not installed.")
        path = resolve_model_path(self.model_dir, record.file)
        try:
            model = adapter.load(path, dict(record.metadata))
            description = model.describe()
        except ApiError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"The {adapter.name} adapter could not load {record.file}: {type(exc).__name__}: {exc}"
            ) from exc
        labels = record.metadata.get("labels")
        _check_description(record, description, labels)
        served = ServedModel(
            record=record,
            model=model,
            description=description,
            loaded_at=utc_now(),
            labels=labels,
            predict_proba=getattr(model, "predict_proba", None) if description.task == "classification" else None,
        )
        _trial_prediction(served)
        return served

    def _install(self, served: ServedModel, reason: str) -> None:
        if served.name in self._cache:
            self._drop(served.name, reason)
        self._cache[served.name] = served
        log.info("model %s loaded from %s (%s)", served.name, served.record.file, served.record.model_type)
        from app.model_info import model_info

        try:
            self.plugins.manager.hook.model_loaded(name=served.name, info=model_info(self, served.record))
        except Exception:
            log.exception("a model_loaded hook failed for %s", served.name)

    def loaded_count(self) -> int:
        return len(self._cache)


def _check_description(record: ModelRecord, description: ModelDescription, labels: list[str] | None) -> None:
    names = record.metadata.get("feature_names") or description.feature_names
    if names is not None and description.n_features is not None and len(names) != description.n_features:
        raise ModelLoadError(f"{record.file}: {len(names)} feature names for {description.n_features} features.")
    if labels is not None:
        if description.task != "classification":
            raise ModelLoadError(f"{record.file}: labels are given but the model is a regressor.")
        if description.classes is not None and len(labels) != len(description.classes):
            raise ModelLoadError(
                f"{record.file}: {len(labels)} labels in the metadata but the model has "
                f"{len(description.classes)} classes."
            )


def _trial_prediction(served: ServedModel) -> None:
    """Predict one row of zeros so a model that cannot serve fails at load, not at the first user."""
    n = served.description.n_features
    if not n:
        return
    try:
        row = np.zeros((1, n))
        served.model.predict(row)
        if served.predict_proba is not None:
            served.predict_proba(row)
    except Exception as exc:
        raise ModelLoadError(
            f"{served.record.file} loaded but a trial prediction failed: {type(exc).__name__}: {exc}"
        ) from exc
