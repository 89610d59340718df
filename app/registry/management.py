"""What an admin changes: load, delete, alias, roll back and trust, each checked first and audited.

:class:`ModelRegistry` adds these actions to the serving registry. Each one
loads and warms what it needs in this worker before committing the change to
the shared state, records a success or failure in the audit trail, and syncs,
so that once it returns every later request on any worker sees the change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app import desired_state as ds
from app.desired_state import DesiredState
from app.errors import ApiError, Conflict
from app.model_files import relative_to_model_dir, resolve_model_path, sha256_of
from app.registry.served import ServedModel
from app.registry.serving import ServingRegistry


class ModelRegistry(ServingRegistry):
    """Loads, serves and unloads model versions for one worker, in step with the shared store."""

    def load(self, name: str, requested_path: str, model_type: str | None, actor: str = "anonymous") -> ServedModel:
        """Load a file as the new current version of ``name``, warmed before any request sees it."""
        self.warm()
        details: dict[str, Any] = {"model_path": requested_path, "model_type": model_type}
        try:
            record = self.loader.record_for(requested_path, model_type, origin="api", name=name)
            if name in self.state().aliases:
                raise Conflict(f"'{name}' is an alias; choose another model name or delete the alias first.")
            served = self.loader.load(record, self.snapshot().trusted)
            with self._load_lock:
                before = self.snapshot().models.get(name)
                added = self.store.transact(lambda state: ds.add_version(state, record))
                served.record = added
                if added.registered_at == record.registered_at or (added.name, added.version) not in self._cache:
                    self._install(served)  # a new version (or the current one, not yet held here)
        except ApiError as exc:
            self.audit_trail.record(actor, "load", name, "failure", {**details, "error": exc.description})
            self._load_failed(name, exc)
            raise
        details.update(
            version=added.version,
            file=added.file,
            sha256=added.sha256,
            previous_version=before.current if before else None,
            unchanged=added.registered_at != record.registered_at,  # the file was already current
        )
        self.audit_trail.record(actor, "load", name, "success", details)
        self.sync()
        return self._cache.get(served.key) or served

    def unload(self, name: str, actor: str = "anonymous") -> None:
        self.warm()
        with self._failure_audited(actor, "delete", name):
            removed = self.store.transact(lambda state: ds.remove_model(state, name))
        self.audit_trail.record(
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
        with self._failure_audited(actor, "alias", alias, details):
            state = self.state()
            probe = DesiredState(models=state.models)
            ds.set_alias(probe, alias, name, version)  # validate before loading anything
            self.get_version(name, version)
            before = state.aliases.get(alias)
            target = self.store.transact(lambda s: ds.set_alias(s, alias, name, version))
        details["previous"] = before.__dict__ if before else None
        self.audit_trail.record(actor, "alias", alias, "success", details)
        self.sync()
        return target

    def remove_alias(self, alias: str, actor: str = "anonymous") -> ds.AliasTarget:
        self.warm()
        with self._failure_audited(actor, "unalias", alias):
            target = self.store.transact(lambda s: ds.remove_alias(s, alias))
        self.audit_trail.record(actor, "unalias", alias, "success", {"model": target.model, "version": target.version})
        self.sync()
        return target

    def rollback(self, name: str, version: int | None, actor: str = "anonymous") -> ServedModel:
        """Make the previous (or the given) version current again, warmed first."""
        with self._failure_audited(actor, "rollback", name, {"version": version}):
            probe = DesiredState(models={n: _copy_model(m) for n, m in self.state().models.items()})
            _, target = ds.rollback(probe, name, version)  # validate before loading anything
            served = self.get_version(name, target)
            before, after = self.store.transact(lambda s: ds.rollback(s, name, version))
        self.audit_trail.record(actor, "rollback", name, "success", {"from_version": before, "to_version": after})
        self.sync()
        return served

    def trust(self, requested_path: str, actor: str = "anonymous") -> tuple[str, str, bool]:
        """Trust the file's current content for unpickling; return (file, sha256, newly trusted)."""
        with self._failure_audited(actor, "trust", requested_path):
            path = resolve_model_path(self.model_dir, requested_path)
            file, digest = relative_to_model_dir(self.model_dir, path), sha256_of(path)
            added = self.store.transact(lambda state: ds.trust_file(state, digest, file, actor))
        self.audit_trail.record(actor, "trust", file, "success", {"sha256": digest, "already_trusted": not added})
        self.sync()  # a changed state also clears this worker's memory of failed (untrusted) loads
        return file, digest, added

    def audit(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The audit trail, newest first, and its length."""
        return self.audit_trail.page(limit, offset)

    @contextmanager
    def _failure_audited(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> Iterator[None]:
        """An action refused inside the block is audited as a failure, with the error, and raised on."""
        try:
            yield
        except ApiError as exc:
            self.audit_trail.record(actor, action, target, "failure", {**(details or {}), "error": exc.description})
            raise


def _copy_model(model: ds.ModelState) -> ds.ModelState:
    return ds.ModelState(model.name, model.current, model.previous, dict(model.versions))
