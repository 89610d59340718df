"""What a request asks of the registry: the model version a name or alias means now, loaded in this worker.

:class:`ServingRegistry` is the hot path and what keeps it right: it follows
the shared state (:mod:`app.registry.sync`), loads a version the first time a
request needs it (:mod:`app.registry.loading`), holds it in the LRU
(:mod:`app.registry.cache`) and tells plugins as versions come and go. The
actions that change the shared state are added by
:class:`~app.registry.management.ModelRegistry`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.desired_state import DEFAULT_ALIAS, DesiredState, ModelRecord
from app.errors import ApiError, ModelNotFound, NotFound
from app.plugin_manager import PluginSet
from app.registry.audit import AuditTrail
from app.registry.auto_load import register_directory
from app.registry.cache import ServedCache
from app.registry.idle import start_idle_reaper
from app.registry.info import model_info
from app.registry.loading import ModelLoader
from app.registry.served import Key, ServedModel
from app.registry.sync import StateFollower, reachable_versions
from app.registry.trust import TrustPolicy
from app.state_store import StateStore, StateStoreUnavailable

log = logging.getLogger(__name__)


class ServingRegistry:
    """Serves model versions for one worker, in step with the shared store."""

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
        self.loader = ModelLoader(plugins, self.model_dir, self.trust_policy, self.allow_version_mismatch)
        self.audit_trail = AuditTrail(store)
        self._shared = StateFollower(store, sync_interval_ms)
        self._cache = ServedCache(self.max_models)
        self._load_lock = threading.RLock()  # one load at a time; never held on the hot path
        #: Versions auto-load loaded while registering them, by (name, sha256): served at warm-up without a reload.
        self._prepared: dict[tuple[str, str], ServedModel] = {}
        #: Loads that failed in this worker, by (name, sha256): not retried on every request.
        self._failed: dict[tuple[str, str], ApiError] = {}
        self._warmed = False
        self._warm_failure: StateStoreUnavailable | None = None

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
            try:
                self._warm()
            except StateStoreUnavailable as exc:  # gunicorn's boot must not fail: requests get 503 meanwhile
                self._warm_failure = exc

    def _warm(self) -> None:
        if self.auto_load:
            self.sync(force=True)  # trusted files and earlier registrations
            try:
                self._prepared = register_directory(self.loader, self.store, self.audit_trail, self._shared.state)
            except StateStoreUnavailable:  # serving a saved copy: files are registered by a worker that can
                log.warning("the model directory was not registered: the registry's shared state is unreachable")
        self.sync(force=True)
        state = self._shared.state
        wanted = [state.resolve(DEFAULT_ALIAS, self.default_model)]
        wanted += [(name, m.current) for name, m in sorted(state.models.items())]
        for key in dict.fromkeys(k for k in wanted if k is not None):
            if len(self._cache) >= self.max_models:
                break
            try:
                self._load_version(key)
            except ApiError as exc:
                log.error("model %s version %d could not be loaded: %s", *key, exc.description)
        self._prepared.clear()
        if self.model_timeout:
            start_idle_reaper(self.unload_idle, self.model_timeout)
        self._warmed = True

    # --- the shared state -------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Follow the shared state; cheap when nothing changed (one generation read)."""
        state = self._shared.poll(force)
        if state is None:
            return
        self._failed.clear()  # the state changed (a reload, a trust): give failed loads another chance
        reachable = reachable_versions(state, self.default_model)
        stale = self._cache.remove_if(
            lambda key, served: key not in reachable or reachable[key].sha256 != served.record.sha256
        )
        for served in stale:
            self._unloaded(served, "replaced" if served.name in state.models else "deleted")

    # --- lookups (the hot path) -------------------------------------------

    def get(self, requested: str) -> ServedModel:
        """Return the model version ``requested`` (a name or alias) resolves to, loading it if needed."""
        self.warm()
        if not self._warmed:
            raise self._warm_failure or StateStoreUnavailable("The registry's shared state was not read yet.")
        self.sync()
        key = self._shared.state.resolve(requested, self.default_model)
        if key is None and self._shared.throttled:
            with contextlib.suppress(StateStoreUnavailable):  # unreachable: the state read last answers
                self.sync(force=True)  # a throttled view may not know a model that was just loaded
            key = self._shared.state.resolve(requested, self.default_model)
        if key is None:
            raise ModelNotFound(requested)
        served = self._cache.get(key)
        if served is None:
            return self._load_version(key)
        self._cache.touch(key, served)
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

    @property
    def warmed(self) -> bool:
        """Whether this worker finished its warm-up: it read the shared state and knows what to serve."""
        return self._warmed

    def state(self) -> DesiredState:
        self.warm()
        self.sync()
        return self._shared.state

    def snapshot(self) -> DesiredState:
        """The state this worker last read, without syncing (for code already inside a sync or load)."""
        return self._shared.state

    def records(self) -> dict[str, ModelRecord]:
        """Each model's current version."""
        return {name: m.current_record for name, m in self.state().models.items()}

    def resolve_name(self, requested: str) -> str:
        key = self._shared.state.resolve(requested, self.default_model)
        return key[0] if key else requested

    def loaded(self, name: str, version: int | None = None) -> ServedModel | None:
        model = self._shared.state.models.get(name)
        if model is None:
            return None
        return self._cache.get((name, version if version is not None else model.current))

    def loaded_models(self) -> list[ServedModel]:
        return self._cache.values()

    def loaded_count(self) -> int:
        return len(self._cache)

    def aliases_of(self, name: str) -> dict[str, int | None]:
        return self._shared.state.aliases_of(name, self.default_model)

    # --- this worker's memory ---------------------------------------------

    def unload_idle(self, now: float | None = None) -> list[Key]:
        """Drop models unused for ``model_timeout`` seconds (not the default model's version)."""
        now = time.monotonic() if now is None else now
        keep = self._shared.state.resolve(DEFAULT_ALIAS, self.default_model)
        idle = self._cache.remove_if(lambda key, served: key != keep and now - served.last_used >= self.model_timeout)
        for served in idle:
            self._unloaded(served, "idle")
        return [served.key for served in idle]

    def _load_version(self, key: Key) -> ServedModel:
        with self._load_lock:
            served = self._cache.get(key)
            if served is not None:
                return served
            model = self._shared.state.models.get(key[0])
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
                served = self.loader.reload(record, self._shared.state.trusted)
            except ApiError as exc:
                self._failed[(record.name, record.sha256)] = exc
                self._load_failed(record.name, exc)
                raise
            self._install(served)
            return served

    def _install(self, served: ServedModel) -> None:
        for old in self._cache.add(served):
            self._unloaded(old, "evicted")
        log.info(
            "model %s version %d loaded from %s (%s)",
            served.name,
            served.version,
            served.record.file,
            served.record.model_type,
            extra={"model_name": served.name},
        )
        try:
            self.plugins.manager.hook.model_loaded(name=served.name, info=model_info(self, served))
        except Exception:
            log.exception("a model_loaded hook failed for %s", served.name)

    # --- telling plugins --------------------------------------------------

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
