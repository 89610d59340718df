"""The model registry: each worker's cache of loaded models, converging on the shared desired state.

Contract (README, "Several workers, one set of models"): once a load, alias
change or rollback returns, every later request on any worker or replica
sees it (a worker that has not loaded the model yet loads it before
answering); once a delete returns, no worker serves the model. A change is
committed only after this worker loaded the model and a trial prediction
passed, so a broken file never replaces a working version.

Memory: at most ``models.max_models`` model versions are held per worker; the
least recently used is evicted and reloaded on next use, and models idle for
``models.model_timeout`` seconds are unloaded (the default model excepted).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import desired_state as ds
from app import provenance
from app.adapters import LoadedModel, ModelAdapter, ModelDescription
from app.desired_state import DEFAULT_ALIAS, DesiredState, ModelRecord, utc_now
from app.errors import ApiError, Conflict, ModelLoadError, ModelNotFound, NotFound, ValidationFailed
from app.memory import estimate_bytes
from app.model_files import is_sidecar, read_sidecar, relative_to_model_dir, resolve_model_path, sha256_of
from app.plugin_manager import PluginSet
from app.state_store import StateStore

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (model name, version)


class UntrustedModel(ApiError):
    """A file that runs code when loaded and that nobody trusted (403)."""

    code = 403


@dataclass(frozen=True)
class TrustPolicy:
    """Which code-running model files may load: by sha256, from config or an admin's approval."""

    trusted: frozenset[str] = frozenset()
    allow_unverified: bool = True


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


class ModelRegistry:
    """Loads, serves and unloads model versions for one worker, in step with the shared store."""

    def __init__(
        self,
        store: StateStore,
        plugins: PluginSet,
        models_config: Mapping[str, Any],
        sync_interval_ms: int = 0,
        trust: TrustPolicy | None = None,
    ):
        self.store = store
        self.plugins = plugins
        self.model_dir = Path(models_config["model_directory"])
        self.max_models: int = models_config["max_models"]
        self.default_model: str = models_config["default_model"]
        self.auto_load: bool = models_config["auto_load"]
        self.model_timeout: int = models_config["model_timeout"]
        self.allow_version_mismatch: bool = models_config.get("allow_version_mismatch", False)
        self.trust_policy = trust or TrustPolicy()
        self._sync_interval = sync_interval_ms / 1000
        self._checked_at = 0.0
        self._load_lock = threading.RLock()  # one load at a time; never held on the hot path
        self._cache_lock = threading.Lock()  # guards _cache's order and membership
        self._cache: OrderedDict[Key, ServedModel] = OrderedDict()
        self._state = DesiredState(generation=-1)
        self._prepared: dict[tuple[str, str], ServedModel] = {}
        #: Loads that failed in this worker, by (name, sha256): not retried on every request.
        self._failed: dict[tuple[str, str], ApiError] = {}
        self._warmed = False

    # --- start-up --------------------------------------------------------

    def warm(self) -> None:
        """Register the directory's files (``auto_load``) and load the current versions.

        Idempotent; gunicorn calls it in each worker after fork, the first
        request calls it otherwise. The default model loads first.
        """
        if self._warmed:
            return
        with self._load_lock:
            if self._warmed:
                return
            if self.auto_load:
                self._register_directory()
            self.sync(force=True)
            wanted = [self._state.resolve(DEFAULT_ALIAS, self.default_model)]
            wanted += [(name, m.current) for name, m in sorted(self._state.models.items())]
            for key in dict.fromkeys(k for k in wanted if k is not None):
                if len(self._cache) >= self.max_models:
                    break
                try:
                    self._load_version(key)
                except ApiError as exc:
                    log.error("model %s version %d could not be loaded: %s", *key, exc.description)
            self._prepared.clear()
            if self.model_timeout:
                _start_idle_reaper(self)
            self._warmed = True

    def _register_directory(self) -> None:
        """Register the directory's loadable files; a file that fails to load is never registered."""
        if not self.model_dir.is_dir():
            log.warning("model directory %s does not exist; no model auto-loaded", self.model_dir)
            return
        self.sync(force=True)  # trusted files and earlier registrations
        current = self._state
        for path in sorted(self.model_dir.iterdir()):
            if not path.is_file() or path.name.startswith((".", "_")) or is_sidecar(path):
                continue
            if path.suffix.lower() not in self.plugins.by_suffix:
                continue
            try:
                record = self._record_for(path.name, None, origin="auto_load", name=None)
                if record.metadata.get("auto_load") is False:
                    continue
                known = current.models.get(record.name)
                if known and (known.current_record.file, known.current_record.sha256) == (record.file, record.sha256):
                    continue  # registered before, unchanged
                served = self._instantiate(record)
            except ApiError as exc:
                log.error("not auto-loading %s: %s", path.name, exc.description)
                continue
            added = self.store.transact(lambda state, r=record: ds.adopt_file(state, r))
            if added is not None and added.registered_at != record.registered_at:
                continue  # another worker registered the same file first
            if added is None:
                log.warning(
                    "not auto-loading %s: the name %s belongs to another file or was unloaded through the API",
                    path.name,
                    record.name,
                )
                continue
            served.record = added
            self._prepared[(added.name, added.sha256)] = served
            self._audit(
                "auto_load",
                "load",
                added.name,
                "success",
                {"version": added.version, "file": added.file, "sha256": added.sha256},
            )

    # --- the shared state -------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Follow the shared state; cheap when nothing changed (one generation read)."""
        if not force:
            if self._sync_interval:
                now = time.monotonic()
                if now - self._checked_at < self._sync_interval:
                    return
                self._checked_at = now
            if self.store.published_generation() == self._state.generation:
                return
        state = self.store.read()
        self._state = state
        self._failed.clear()  # the state changed (a reload, a trust): give failed loads another chance
        reachable = self._reachable(state)
        with self._cache_lock:
            stale = [
                (key, served)
                for key, served in self._cache.items()
                if key not in reachable or reachable[key].sha256 != served.record.sha256
            ]
            for key, _ in stale:
                del self._cache[key]
        for (name, _), served in stale:
            self._unloaded(served, "replaced" if name in state.models else "deleted")

    def _reachable(self, state: DesiredState) -> dict[Key, ModelRecord]:
        """Versions a request can reach: each model's current one and every alias target."""
        found = {(name, m.current): m.current_record for name, m in state.models.items()}
        for alias in (*state.aliases, DEFAULT_ALIAS):
            key = state.resolve(alias, self.default_model)
            if key is not None:
                found[key] = state.models[key[0]].versions[key[1]]
        return found

    # --- lookups (the hot path) -------------------------------------------

    def get(self, requested: str) -> ServedModel:
        """Return the model version ``requested`` (a name or alias) resolves to, loading it if needed."""
        self.warm()
        self.sync()
        key = self._state.resolve(requested, self.default_model)
        if key is None and self._sync_interval:
            self.sync(force=True)  # a throttled view may not know a model that was just loaded
            key = self._state.resolve(requested, self.default_model)
        if key is None:
            raise ModelNotFound(requested)
        served = self._cache.get(key)
        if served is None:
            return self._load_version(key)
        served.last_used = time.monotonic()
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
        return served

    def state(self) -> DesiredState:
        self.warm()
        self.sync()
        return self._state

    def snapshot(self) -> DesiredState:
        """The state this worker last read, without syncing (for code already inside a sync or load)."""
        return self._state

    def records(self) -> dict[str, ModelRecord]:
        """Each model's current version."""
        return {name: m.current_record for name, m in self.state().models.items()}

    def resolve_name(self, requested: str) -> str:
        key = self._state.resolve(requested, self.default_model)
        return key[0] if key else requested

    def loaded(self, name: str, version: int | None = None) -> ServedModel | None:
        model = self._state.models.get(name)
        if model is None:
            return None
        return self._cache.get((name, version if version is not None else model.current))

    def loaded_models(self) -> list[ServedModel]:
        with self._cache_lock:
            return list(self._cache.values())

    def loaded_count(self) -> int:
        return len(self._cache)

    def aliases_of(self, name: str) -> dict[str, int | None]:
        return self._state.aliases_of(name, self.default_model)

    # --- management (each change is audited) -------------------------------

    def load(self, name: str, requested_path: str, model_type: str | None, actor: str = "anonymous") -> ServedModel:
        """Load a file as the new current version of ``name``, warmed before any request sees it."""
        self.warm()
        details: dict[str, Any] = {"model_path": requested_path, "model_type": model_type}
        try:
            record = self._record_for(requested_path, model_type, origin="api", name=name)
            if name in self.state().aliases:
                raise Conflict(f"'{name}' is an alias; choose another model name or delete the alias first.")
            served = self._instantiate(record)
            with self._load_lock:
                before = self._state.models.get(name)
                added = self.store.transact(lambda state: ds.add_version(state, record))
                served.record = added
                if added.registered_at == record.registered_at or added_key_missing(self._cache, added):
                    self._install(served)  # a new version (or the current one, not yet held here)
        except ApiError as exc:
            self._audit(actor, "load", name, "failure", {**details, "error": exc.description})
            self._load_failed(name, exc)
            raise
        details.update(
            version=added.version,
            file=added.file,
            sha256=added.sha256,
            previous_version=before.current if before else None,
            unchanged=added.registered_at != record.registered_at,  # the file was already current
        )
        self._audit(actor, "load", name, "success", details)
        self.sync()
        return self._cache.get(served.key, served)

    def unload(self, name: str, actor: str = "anonymous") -> None:
        self.warm()
        try:
            removed = self.store.transact(lambda state: ds.remove_model(state, name))
        except ApiError as exc:
            self._audit(actor, "delete", name, "failure", {"error": exc.description})
            raise
        self._audit(
            actor,
            "delete",
            name,
            "success",
            {"versions": sorted(removed.versions), "file": removed.current_record.file},
        )
        self.sync()

    def set_alias(self, alias: str, name: str, version: int | None, actor: str = "anonymous") -> ds.AliasTarget:
        """Point ``alias`` at a model (its current version, or a pinned one), warmed first."""
        details = {"model": name, "version": version}
        try:
            state = self.state()
            probe = DesiredState(models=state.models)
            ds.set_alias(probe, alias, name, version)  # validate before loading anything
            self.get_version(name, version)
            before = state.aliases.get(alias)
            target = self.store.transact(lambda s: ds.set_alias(s, alias, name, version))
        except ApiError as exc:
            self._audit(actor, "alias", alias, "failure", {**details, "error": exc.description})
            raise
        details["previous"] = before.__dict__ if before else None
        self._audit(actor, "alias", alias, "success", details)
        self.sync()
        return target

    def remove_alias(self, alias: str, actor: str = "anonymous") -> ds.AliasTarget:
        self.warm()
        try:
            target = self.store.transact(lambda s: ds.remove_alias(s, alias))
        except ApiError as exc:
            self._audit(actor, "unalias", alias, "failure", {"error": exc.description})
            raise
        self._audit(actor, "unalias", alias, "success", {"model": target.model, "version": target.version})
        self.sync()
        return target

    def rollback(self, name: str, version: int | None, actor: str = "anonymous") -> ServedModel:
        """Make the previous (or the given) version current again, warmed first."""
        try:
            probe = DesiredState(models={n: _copy_model(m) for n, m in self.state().models.items()})
            _, target = ds.rollback(probe, name, version)  # validate before loading anything
            served = self.get_version(name, target)
            before, after = self.store.transact(lambda s: ds.rollback(s, name, version))
        except ApiError as exc:
            self._audit(actor, "rollback", name, "failure", {"version": version, "error": exc.description})
            raise
        self._audit(actor, "rollback", name, "success", {"from_version": before, "to_version": after})
        self.sync()
        return served

    def get_version(self, name: str, version: int | None) -> ServedModel:
        """A specific version (``None``: the current one), loading it in this worker if needed."""
        model = self.state().models.get(name)
        if model is None:
            raise ModelNotFound(name)
        key = (name, version if version is not None else model.current)
        if key[1] not in model.versions:
            raise NotFound(f"Model '{name}' has no version {key[1]}; it has {sorted(model.versions)}.")
        return self._cache.get(key) or self._load_version(key)

    def audit(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        return self.store.audit(limit, offset)

    def _audit(self, actor: str, action: str, target: str, outcome: str, details: dict[str, Any]) -> None:
        try:
            self.store.record_audit(actor, action, target, outcome, details)
        except Exception:  # the action happened; a lost audit line must be visible, not fatal
            log.exception("could not record audit entry %s %s %s", action, target, outcome)

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

    def _load_version(self, key: Key) -> ServedModel:
        with self._load_lock:
            served = self._cache.get(key)
            if served is not None:
                return served
            model = self._state.models.get(key[0])
            if model is None or key[1] not in model.versions:
                raise ModelNotFound(key[0])
            record = model.versions[key[1]]
            prepared = self._prepared.pop((record.name, record.sha256), None)
            if prepared is not None:
                prepared.record = record
                self._install(prepared)
                return prepared
            failure = self._failed.get((record.name, record.sha256))
            if failure is not None:
                raise failure
            try:
                path = resolve_model_path(self.model_dir, record.file)
                if sha256_of(path) != record.sha256:
                    raise Conflict(
                        f"The file of model '{record.name}' version {record.version} ({record.file}) changed on "
                        "disk since it was loaded; load it again to serve the new file."
                    )
                served = self._instantiate(record)
            except ApiError as exc:
                self._failed[(record.name, record.sha256)] = exc
                self._load_failed(record.name, exc)
                raise
            self._install(served)
            return served

    def _instantiate(self, record: ModelRecord) -> ServedModel:
        adapter = self.plugins.adapters.get(record.model_type)
        if adapter is None:
            raise ModelLoadError(f"The adapter '{record.model_type}' for model '{record.name}' is not installed.")
        path = resolve_model_path(self.model_dir, record.file)
        self._check_trust(adapter, path, record)
        mismatch = provenance.mismatches(record.metadata.get("training"))
        if mismatch and not self.allow_version_mismatch:
            raise ModelLoadError(
                f"{record.file} was trained with {provenance.describe(mismatch)}. Retrain it with this server's "
                "versions, or set models.allow_version_mismatch: true to serve it anyway."
            )
        started = time.perf_counter()
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
            memory_bytes=estimate_bytes(model, floor=record.size_bytes),
            version_mismatch=mismatch,
        )
        _trial_prediction(served)
        served.load_seconds = time.perf_counter() - started
        if mismatch:
            log.warning("serving %s despite a version mismatch: %s", record.file, provenance.describe(mismatch))
        return served

    def _check_trust(self, adapter: ModelAdapter, path: Path, record: ModelRecord) -> None:
        """Refuse to let an adapter run a file's code unless its sha256 is trusted."""
        executes_code = getattr(adapter, "executes_code", None)
        if executes_code is not None and not executes_code(path):
            return
        policy = self.trust_policy
        if policy.allow_unverified or record.sha256 in policy.trusted or record.sha256 in self._state.trusted:
            return
        raise UntrustedModel(
            f"{record.file} runs code when it is loaded ({adapter.name} adapter) and its sha256 "
            f"{record.sha256} is not trusted. An admin can trust it with POST /api/v1/models/trust "
            f'{{"model_path": "{record.file}"}} or by listing the sha256 in security.trusted_models; '
            "safer still, save it as .skops (scikit-learn) or .json/.ubj (XGBoost)."
        )

    def trust(self, requested_path: str, actor: str = "anonymous") -> tuple[str, str, bool]:
        """Trust the file's current content for unpickling; return (file, sha256, newly trusted)."""
        try:
            path = resolve_model_path(self.model_dir, requested_path)
            file, digest = relative_to_model_dir(self.model_dir, path), sha256_of(path)
            added = self.store.transact(lambda state: ds.trust_file(state, digest, file, actor))
        except ApiError as exc:
            self._audit(actor, "trust", requested_path, "failure", {"error": exc.description})
            raise
        self._audit(actor, "trust", file, "success", {"sha256": digest, "already_trusted": not added})
        self.sync()  # a changed state also clears this worker's memory of failed (untrusted) loads
        return file, digest, added

    def _install(self, served: ServedModel) -> None:
        evicted: list[ServedModel] = []
        with self._cache_lock:
            self._cache[served.key] = served
            self._cache.move_to_end(served.key)
            while len(self._cache) > self.max_models:
                _, oldest = self._cache.popitem(last=False)
                evicted.append(oldest)
        for old in evicted:
            self._unloaded(old, "evicted")
        log.info(
            "model %s version %d loaded from %s (%s)",
            served.name,
            served.version,
            served.record.file,
            served.record.model_type,
            extra={"model_name": served.name},
        )
        from app.model_info import model_info

        try:
            self.plugins.manager.hook.model_loaded(name=served.name, info=model_info(self, served))
        except Exception:
            log.exception("a model_loaded hook failed for %s", served.name)

    def _load_failed(self, name: str, exc: ApiError) -> None:
        try:
            self.plugins.manager.hook.model_load_failed(name=name, error=exc.description)
        except Exception:
            log.exception("a model_load_failed hook failed for %s", name)

    def _unloaded(self, served: ServedModel, reason: str) -> None:
        log.info(
            "model %s version %d unloaded (%s)", served.name, served.version, reason, extra={"model_name": served.name}
        )
        try:
            self.plugins.manager.hook.model_unloaded(name=served.name, version=served.version, reason=reason)
        except Exception:
            log.exception("a model_unloaded hook failed for %s", served.name)

    def unload_idle(self, now: float | None = None) -> list[Key]:
        """Drop models unused for ``model_timeout`` seconds (not the default model's version)."""
        now = time.monotonic() if now is None else now
        keep = self._state.resolve(DEFAULT_ALIAS, self.default_model)
        with self._cache_lock:
            idle = [(k, s) for k, s in self._cache.items() if k != keep and now - s.last_used >= self.model_timeout]
            for key, _ in idle:
                del self._cache[key]
        for _, served in idle:
            self._unloaded(served, "idle")
        return [k for k, _ in idle]


def added_key_missing(cache: Mapping[Key, ServedModel], record: ModelRecord) -> bool:
    return (record.name, record.version) not in cache


def _copy_model(model: ds.ModelState) -> ds.ModelState:
    return ds.ModelState(model.name, model.current, model.previous, dict(model.versions))


def _start_idle_reaper(registry: ModelRegistry) -> None:
    """A daemon thread per worker that unloads idle models; it ends with the registry."""
    interval = min(max(registry.model_timeout / 4, 0.05), 30.0)
    ref = weakref.ref(registry)
    stop = threading.Event()

    def reap() -> None:
        while not stop.wait(interval):
            alive = ref()
            if alive is None:
                return
            try:
                alive.unload_idle()
            except Exception:
                log.exception("idle model unloading failed")
            del alive

    threading.Thread(target=reap, name="modelserve-idle-reaper", daemon=True).start()


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
