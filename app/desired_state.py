"""The registry's desired state as one small document, and the changes allowed on it.

Which models should be served, their versions, which version is current,
the aliases, and the models unloaded through the API. Every change is a pure
function on a :class:`DesiredState`; a state store (SQLite or Redis) applies
it atomically (read, change, write) so that every worker and replica sees one
consistent history. Invalid changes raise the API error the client gets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from app.errors import Conflict, ModelNotFound, NotFound

DEFAULT_ALIAS = "default"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelRecord:
    """One version of a model: its file (relative to the model directory) and identity."""

    name: str
    file: str
    model_type: str
    sha256: str
    size_bytes: int
    metadata: dict[str, Any]
    origin: str  # "auto_load" or "api"
    registered_at: str
    version: int = 0  # assigned when the version is added


@dataclass
class ModelState:
    name: str
    current: int
    previous: int | None
    versions: dict[int, ModelRecord]

    @property
    def current_record(self) -> ModelRecord:
        return self.versions[self.current]


@dataclass(frozen=True)
class AliasTarget:
    model: str
    version: int | None = None  # None: follows the model's current version


@dataclass
class DesiredState:
    models: dict[str, ModelState] = field(default_factory=dict)
    aliases: dict[str, AliasTarget] = field(default_factory=dict)
    #: name -> file of models unloaded through the API: auto-loading must not bring them back.
    unloaded: dict[str, str] = field(default_factory=dict)
    #: sha256 -> {file, by, at}: files an admin approved for unpickling (POST /models/trust).
    trusted: dict[str, dict[str, str]] = field(default_factory=dict)
    generation: int = 0

    # --- reading ----------------------------------------------------------

    def resolve(self, requested: str, default_model: str) -> tuple[str, int] | None:
        """Return (model, version) for a model name or alias, ``None`` when unknown."""
        target = self.aliases.get(requested)
        if target is None and requested == DEFAULT_ALIAS and requested not in self.models:
            target = AliasTarget(default_model)
        if target is not None:
            model = self.models.get(target.model)
            if model is None:
                return None
            version = target.version if target.version is not None else model.current
            return (target.model, version) if version in model.versions else None
        model = self.models.get(requested)
        return (requested, model.current) if model else None

    def aliases_of(self, name: str, default_model: str) -> dict[str, int | None]:
        found = {alias: t.version for alias, t in self.aliases.items() if t.model == name}
        if DEFAULT_ALIAS not in self.aliases and DEFAULT_ALIAS not in self.models and name == default_model:
            found[DEFAULT_ALIAS] = None
        return found

    # --- serialisation --------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "models": {
                name: {
                    "current": m.current,
                    "previous": m.previous,
                    "versions": {str(v): asdict(r) for v, r in m.versions.items()},
                }
                for name, m in self.models.items()
            },
            "aliases": {alias: asdict(t) for alias, t in self.aliases.items()},
            "unloaded": dict(self.unloaded),
            "trusted": dict(self.trusted),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None, generation: int) -> DesiredState:
        doc = doc or {}
        models = {
            name: ModelState(
                name=name,
                current=m["current"],
                previous=m.get("previous"),
                versions={int(v): ModelRecord(**r) for v, r in m["versions"].items()},
            )
            for name, m in doc.get("models", {}).items()
        }
        aliases = {alias: AliasTarget(**t) for alias, t in doc.get("aliases", {}).items()}
        return cls(
            models=models,
            aliases=aliases,
            unloaded=dict(doc.get("unloaded", {})),
            trusted=dict(doc.get("trusted", {})),
            generation=generation,
        )


# --- changes: each mutates ``state`` and returns what the caller reports ----------


def add_version(state: DesiredState, record: ModelRecord) -> ModelRecord:
    """Add ``record`` as the new current version of its model (an API load).

    Loading the file that is already current changes nothing and returns it.
    """
    if record.name in state.aliases:
        raise Conflict(f"'{record.name}' is an alias; choose another model name or delete the alias first.")
    model = state.models.get(record.name)
    state.unloaded.pop(record.name, None)
    if model is not None:
        current = model.current_record
        if _same_content(current, record):
            return current
        added = replace(record, version=max(model.versions) + 1)
        model.versions[added.version] = added
        model.previous, model.current = model.current, added.version
        return added
    added = replace(record, version=1)
    state.models[record.name] = ModelState(record.name, current=1, previous=None, versions={1: added})
    return added


def _same_content(a: ModelRecord, b: ModelRecord) -> bool:
    """Same file, bytes, adapter and sidecar: an edited sidecar (labels, feature order) is a new version."""
    return (a.file, a.sha256, a.model_type, a.metadata) == (b.file, b.sha256, b.model_type, b.metadata)


def adopt_file(state: DesiredState, record: ModelRecord) -> ModelRecord | None:
    """Start-up auto-loading: register a directory file unless a rule says no.

    Returns ``None`` when the name belongs to another file or was unloaded
    through the API; a file whose content changed becomes a new version.
    """
    if state.unloaded.get(record.name) == record.file or record.name in state.aliases:
        return None
    model = state.models.get(record.name)
    if model is not None and model.current_record.file != record.file:
        return None
    return add_version(state, record)


def remove_model(state: DesiredState, name: str) -> ModelState:
    model = state.models.pop(name, None)
    if model is None:
        raise ModelNotFound(name)
    state.unloaded[name] = model.current_record.file
    for alias in [a for a, t in state.aliases.items() if t.model == name]:
        del state.aliases[alias]
    return model


def set_alias(state: DesiredState, alias: str, name: str, version: int | None) -> AliasTarget:
    if alias in state.models:
        raise Conflict(f"'{alias}' is a model name; an alias cannot hide a model.")
    model = state.models.get(name)
    if model is None:
        raise ModelNotFound(name)
    if version is not None and version not in model.versions:
        raise NotFound(f"Model '{name}' has no version {version}; it has {sorted(model.versions)}.")
    target = AliasTarget(name, version)
    state.aliases[alias] = target
    return target


def remove_alias(state: DesiredState, alias: str) -> AliasTarget:
    target = state.aliases.pop(alias, None)
    if target is None:
        raise NotFound(f"No alias '{alias}'.")
    return target


def rollback(state: DesiredState, name: str, version: int | None) -> tuple[int, int]:
    """Make ``version`` (default: the previous one) current; return (from, to)."""
    model = state.models.get(name)
    if model is None:
        raise ModelNotFound(name)
    target = version if version is not None else model.previous
    if target is None:
        raise Conflict(f"Model '{name}' has no previous version to roll back to.")
    if target not in model.versions:
        raise NotFound(f"Model '{name}' has no version {target}; it has {sorted(model.versions)}.")
    if target == model.current:
        raise Conflict(f"Version {target} of '{name}' is already current.")
    before = model.current
    model.previous, model.current = model.current, target
    return before, target


def trust_file(state: DesiredState, sha256: str, file: str, actor: str) -> bool:
    """Record that ``actor`` approved unpickling the file with this sha256; False if it already was."""
    if sha256 in state.trusted:
        return False
    state.trusted[sha256] = {"file": file, "by": actor, "at": utc_now()}
    return True
