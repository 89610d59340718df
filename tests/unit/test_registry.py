"""The model registry, built directly: versions, aliases, rollback, memory, provenance, and workers sharing state.

Each ``worker()`` is a registry with its own plugin manager and cache over
the same shared store, as two gunicorn workers (or, with Redis, two replicas) are.
"""

from __future__ import annotations

import gc
import json
import platform
import threading
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import hookimpl
from app.adapters import AdapterSettings
from app.config import ModelsSection, RegistrySection
from app.errors import Conflict, ModelLoadError, ModelNotFound, NotFound, ValidationFailed
from app.model_files import sha256_of
from app.plugin_manager import build_plugin_manager
from app.registry import ModelRegistry
from app.registry.info import model_info
from app.state_store import RedisStateStore, build_state_store
from tests.factories import (
    IRIS_FEATURES,
    IRIS_LABELS,
    KNOWN_ROWS,
    write_custom_model,
    write_sidecar,
    write_sklearn_classifier,
    write_sklearn_regressor,
)
from tests.helpers import poll_until
from tests.unit.conftest import REDIS_URL

SETOSA = KNOWN_ROWS["setosa"]


@pytest.fixture
def worker(tmp_path: Path, model_dir: Path):
    """Build one worker's registry as ``register_services`` does; keywords set ``models.*``.

    ``registry=`` sets ``registry.*`` (the store); ``model_timeout`` is 0 unless given,
    so no idle reaper thread runs.
    """

    def build(registry: dict[str, Any] | None = None, **models: Any) -> ModelRegistry:
        models_config = ModelsSection().load({"model_directory": str(model_dir), "model_timeout": 0, **models})
        registry_config = RegistrySection().load({"state_directory": str(tmp_path / "state"), **(registry or {})})
        plugins = build_plugin_manager(tmp_path / "plugins", AdapterSettings())
        store = build_state_store(registry_config)
        return ModelRegistry(store, plugins, models_config, registry_config["sync_interval_ms"])

    return build


class Recorder:
    """A plugin registered into one worker's manager that records the lifecycle hooks."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @hookimpl
    def model_loaded(self, name: str, info: dict[str, Any]) -> None:
        self.events.append(("loaded", name, info["version"]))

    @hookimpl
    def model_unloaded(self, name: str, version: int, reason: str) -> None:
        self.events.append(("unloaded", name, version, reason))

    def unloaded(self) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.events if e[0] == "unloaded"]


def recorder_on(registry: ModelRegistry) -> Recorder:
    recorder = Recorder()
    registry.plugins.manager.register(recorder)
    return recorder


def count_loads(monkeypatch: pytest.MonkeyPatch, registry: ModelRegistry, adapter: str = "sklearn") -> list[str]:
    """Record the file name of every ``load`` call of one worker's adapter (still loading for real)."""
    target = registry.plugins.adapters[adapter]
    real, calls = target.load, []

    def load(path: Path, metadata: Any) -> Any:
        calls.append(path.name)
        return real(path, metadata)

    monkeypatch.setattr(target, "load", load)
    return calls


def predict(registry: ModelRegistry, name: str, row: list[float] = SETOSA) -> Any:
    return registry.get(name).model.predict(np.asarray([row], dtype=np.float64))[0]


def last_audit(registry: ModelRegistry) -> dict[str, Any]:
    (entry,), _ = registry.audit(1, 0)
    return entry


def corrupt(path: Path) -> None:
    path.write_bytes(b"\x80\x04 this is not a pickle")


# --- auto-load at start-up ------------------------------------------------------------


def test_warm_auto_loads_the_directory(worker):
    registry = worker()
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}
    assert registry.loaded_count() == 2
    served = registry.get("iris_classifier")
    assert served.labels == IRIS_LABELS and served.record.origin == "auto_load" and served.version == 1
    assert served.record.model_type == "sklearn" and registry.get("iris_xgboost").record.model_type == "xgboost"
    assert [e["action"] for e in registry.audit(10, 0)[0]] == ["load", "load"]
    assert {e["actor"] for e in registry.audit(10, 0)[0]} == {"auto_load"}


def test_warm_is_idempotent_and_a_second_worker_registers_nothing_new(worker):
    registry = worker()
    registry.warm()
    generation = registry.store.published_generation()
    registry.warm()
    worker().warm()
    assert registry.store.published_generation() == generation
    assert registry.audit(10, 0)[1] == 2


def test_warm_skips_what_is_not_for_auto_load(worker, model_dir):
    write_sklearn_classifier(model_dir, name="on_demand", auto_load=False)
    write_sklearn_classifier(model_dir, name=".hidden")
    write_sklearn_classifier(model_dir, name="_private")
    write_sklearn_classifier(model_dir, name="notes", suffix=".bin")
    (model_dir / "README.txt").write_text("not a model", encoding="utf-8")
    (model_dir / "subdir.joblib").mkdir()
    registry = worker()
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}


def test_file_kept_out_of_auto_load_can_still_be_loaded(worker, model_dir):
    write_sklearn_classifier(model_dir, name="on_demand", auto_load=False)
    registry = worker()
    served = registry.load("on_demand", "on_demand.joblib", None)
    assert served.record.origin == "api" and predict(registry, "on_demand") == 0


def test_sidecar_name_is_the_model_name(worker, model_dir):
    write_sidecar(write_sklearn_classifier(model_dir, name="other_stem"), name="friendly")
    registry = worker()
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost", "friendly"}
    assert registry.records()["friendly"].file == "other_stem.joblib"


def test_auto_load_false_in_config_registers_nothing(worker):
    registry = worker(auto_load=False)
    registry.warm()
    assert registry.records() == {}
    with pytest.raises(ModelNotFound):
        registry.get("iris_classifier")


def test_missing_model_directory_is_not_fatal(worker, tmp_path):
    registry = worker(model_directory=str(tmp_path / "nowhere"))
    registry.warm()
    assert registry.records() == {}


def test_auto_load_registers_every_file_but_holds_only_max_models_default_first(worker, model_dir):
    for i in range(4):
        write_sklearn_classifier(model_dir, name=f"extra{i}")
    registry = worker(max_models=3)
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost", *(f"extra{i}" for i in range(4))}
    assert [s.name for s in registry.loaded_models()] == ["iris_classifier", "extra0", "extra1"]
    assert predict(registry, "extra3") == 0  # the others load on first use
    assert registry.loaded_count() == 3


def test_broken_files_in_the_directory_are_not_registered(worker, model_dir):
    write_sidecar(model_dir / "bad_sidecar.joblib", colour="red")
    write_sklearn_classifier(model_dir, name="bad_sidecar")  # its sidecar above is invalid
    corrupt(model_dir / "aaa_broken.joblib")
    registry = worker(max_models=2)
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}
    assert registry.loaded_count() == 2


def test_changed_auto_load_file_becomes_a_new_version_when_a_worker_starts(worker, model_dir):
    write_sklearn_classifier(model_dir, name="weights", suffix=".pkl")
    first = worker()
    first.warm()
    write_sklearn_regressor(model_dir, name="weights").rename(model_dir / "weights.pkl")
    fresh = worker()
    fresh.warm()
    assert fresh.get("weights").description.task == "regression" and fresh.get("weights").version == 2
    assert first.get("weights").description.task == "regression"  # every worker follows the shared state
    assert sorted(first.state().models["weights"].versions) == [1, 2]


def test_auto_load_does_not_bring_back_a_model_deleted_through_the_api(worker):
    registry = worker()
    registry.warm()
    registry.unload("iris_xgboost")
    later = worker()
    later.warm()
    assert set(later.records()) == {"iris_classifier"}


# --- versions -----------------------------------------------------------------------


def test_loading_a_new_file_makes_a_new_current_version(worker, model_dir):
    write_sklearn_classifier(model_dir, name="second", auto_load=False)
    registry = worker()
    first = registry.get("iris_classifier")
    served = registry.load("iris_classifier", "second.joblib", None, actor="alice")
    model = registry.state().models["iris_classifier"]
    assert sorted(model.versions) == [1, 2] and (model.current, model.previous) == (2, 1)
    assert served.version == 2 and served.record.file == "second.joblib" and served.record.origin == "api"
    assert registry.get("iris_classifier") is served and registry.get("default") is served
    assert registry.loaded("iris_classifier", 1) is None  # the old version left this worker's memory ...
    assert int(first.model.predict(np.asarray([SETOSA]))[0]) == 0  # ... but requests holding it finish on it
    entry = last_audit(registry)
    assert (entry["actor"], entry["action"], entry["target"], entry["outcome"]) == (
        "alice",
        "load",
        "iris_classifier",
        "success",
    )
    assert entry["details"]["version"] == 2 and entry["details"]["previous_version"] == 1
    assert entry["details"]["sha256"] == sha256_of(model_dir / "second.joblib")


def test_loading_the_current_file_again_changes_nothing(worker):
    registry = worker()
    registry.warm()
    before = registry.state()
    served = registry.load("iris_classifier", "iris_classifier.joblib", None)
    assert served.version == 1
    assert registry.store.published_generation() == before.generation
    assert registry.state().models["iris_classifier"] == before.models["iris_classifier"]


def test_loading_the_current_file_again_keeps_the_served_instance(worker):
    registry = worker()
    held = registry.get("iris_classifier")
    recorder = recorder_on(registry)
    held.count(5)
    again = registry.load("iris_classifier", "iris_classifier.joblib", None)
    assert again is held and registry.get("iris_classifier").prediction_count == 5
    assert recorder.events == []


def test_reloading_a_file_whose_sidecar_changed_serves_the_same_labels_on_every_worker(worker, model_dir):
    first, second = worker(), worker()
    first.warm()
    second.warm()
    write_sidecar(model_dir / "iris_classifier.joblib", labels=["a", "b", "c"], feature_names=IRIS_FEATURES)
    served = first.load("iris_classifier", "iris_classifier.joblib", None)
    labels = {
        "loading worker": first.get("iris_classifier").labels,
        "its info": model_info(first, served)["labels"],
        "other worker": second.get("iris_classifier").labels,
        "fresh worker": worker().get("iris_classifier").labels,
    }
    assert len({tuple(v) for v in labels.values()}) == 1, labels


def test_a_failed_load_leaves_the_previous_version_serving_and_is_audited(worker, model_dir):
    first, second = worker(), worker()
    before = first.get("iris_classifier")
    generation = first.store.published_generation()
    corrupt(model_dir / "corrupt.joblib")
    with pytest.raises(ModelLoadError, match="sklearn adapter could not load corrupt.joblib"):
        first.load("iris_classifier", "corrupt.joblib", None, actor="bob")
    assert first.get("iris_classifier") is before
    assert first.store.published_generation() == generation
    assert sorted(first.state().models["iris_classifier"].versions) == [1]
    assert second.get("iris_classifier").record.file == "iris_classifier.joblib"
    assert predict(second, "iris_classifier") == 0
    entry = last_audit(first)
    assert (entry["actor"], entry["action"], entry["target"], entry["outcome"]) == (
        "bob",
        "load",
        "iris_classifier",
        "failure",
    )
    assert entry["details"]["model_path"] == "corrupt.joblib" and "could not load" in entry["details"]["error"]


def test_memory_is_estimated_at_load(worker, model_dir):
    registry = worker()
    for name, file in (("iris_classifier", "iris_classifier.joblib"), ("iris_xgboost", "iris_xgboost.json")):
        served = registry.get(name)
        assert served.memory_bytes >= served.record.size_bytes == (model_dir / file).stat().st_size > 0
        assert model_info(registry, served)["memory_bytes"] == served.memory_bytes


# --- rollback --------------------------------------------------------------------------


@pytest.fixture
def three_versions(worker, model_dir) -> ModelRegistry:
    """A registry whose ``m`` has versions 1 (classifier), 2 (regressor) and 3 (classifier, current)."""
    write_sklearn_classifier(model_dir, name="v1", auto_load=False)
    write_sklearn_regressor(model_dir, name="v2")
    write_sklearn_classifier(model_dir, name="v3", suffix=".pkl")
    registry = worker(auto_load=False)
    for file in ("v1.joblib", "v2.joblib", "v3.pkl"):
        registry.load("m", file, None)
    return registry


def test_rollback_to_the_previous_version(three_versions):
    registry = three_versions
    served = registry.rollback("m", None, actor="carol")
    assert served.version == 2 and registry.get("m") is served and served.description.task == "regression"
    model = registry.state().models["m"]
    assert (model.current, model.previous) == (2, 3)
    entry = last_audit(registry)
    assert (entry["actor"], entry["action"], entry["outcome"]) == ("carol", "rollback", "success")
    assert entry["details"] == {"from_version": 3, "to_version": 2}
    assert registry.rollback("m", None).version == 3  # rolling back the rollback


def test_rollback_to_an_explicit_version(three_versions, worker):
    registry = three_versions
    assert registry.rollback("m", 1).version == 1
    assert worker(auto_load=False).get("m").record.file == "v1.joblib"
    assert last_audit(registry)["details"] == {"from_version": 3, "to_version": 1}


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [(3, Conflict, "already current"), (9, NotFound, "no version 9")],
)
def test_rollback_refusals_are_audited_and_change_nothing(three_versions, version, error, message):
    registry = three_versions
    generation = registry.store.published_generation()
    with pytest.raises(error, match=message):
        registry.rollback("m", version, actor="dave")
    assert registry.store.published_generation() == generation and registry.get("m").version == 3
    entry = last_audit(registry)
    assert (entry["action"], entry["outcome"], entry["details"]["version"]) == ("rollback", "failure", version)


def test_rollback_without_a_previous_version_is_a_conflict(worker):
    with pytest.raises(Conflict, match="no previous version"):
        worker().rollback("iris_classifier", None)
    with pytest.raises(ModelNotFound):
        worker().rollback("nope", None)


def test_rollback_to_a_version_whose_file_changed_is_refused(three_versions, model_dir):
    registry = three_versions
    write_sklearn_regressor(model_dir, name="v1")  # overwrites v1.joblib: not the registered content
    with pytest.raises(Conflict, match="changed on disk"):
        registry.rollback("m", 1)
    assert registry.get("m").version == 3 and registry.state().models["m"].current == 3
    assert last_audit(registry)["outcome"] == "failure"


# --- aliases ------------------------------------------------------------------------------


def test_default_resolves_to_the_configured_default_model(worker):
    registry = worker()
    assert registry.get("default").name == "iris_classifier"
    assert registry.aliases_of("iris_classifier") == {"default": None} and registry.aliases_of("iris_xgboost") == {}


def test_default_model_is_configurable(worker):
    assert worker(default_model="iris_xgboost").get("default").name == "iris_xgboost"


def test_default_model_that_is_not_registered_is_not_found(worker):
    with pytest.raises(ModelNotFound, match="'default'"):
        worker(default_model="nothing_here").get("default")


def test_a_model_named_default_wins_over_the_alias(worker):
    registry = worker()
    registry.load("default", "iris_xgboost.json", None)
    assert registry.get("default").record.file == "iris_xgboost.json"
    assert registry.aliases_of("iris_classifier") == {}


def test_setting_the_default_alias_moves_default_to_another_model(worker):
    registry, other = worker(), worker()
    target = registry.set_alias("default", "iris_xgboost", None, actor="erin")
    assert (target.model, target.version) == ("iris_xgboost", None)
    assert registry.get("default").name == "iris_xgboost" and other.get("default").name == "iris_xgboost"
    assert registry.aliases_of("iris_xgboost") == {"default": None} and registry.aliases_of("iris_classifier") == {}
    entry = last_audit(registry)
    assert (entry["actor"], entry["action"], entry["target"], entry["outcome"]) == (
        "erin",
        "alias",
        "default",
        "success",
    )
    assert entry["details"] == {"model": "iris_xgboost", "version": None, "previous": None}


def test_removing_the_default_alias_falls_back_to_the_configured_default_model(worker):
    registry = worker()
    registry.set_alias("default", "iris_xgboost", None)
    removed = registry.remove_alias("default", actor="erin")
    assert (removed.model, removed.version) == ("iris_xgboost", None)
    assert registry.get("default").name == "iris_classifier"
    assert last_audit(registry)["action"] == "unalias"
    with pytest.raises(NotFound, match="No alias 'default'"):
        registry.remove_alias("default")
    assert last_audit(registry)["outcome"] == "failure"


def test_a_pinned_alias_keeps_serving_its_version_after_a_new_load(worker, model_dir):
    write_sklearn_regressor(model_dir, name="newer")
    registry, other = worker(), worker()
    registry.set_alias("stable", "iris_classifier", 1)
    registry.set_alias("latest", "iris_classifier", None)
    pinned = other.get("stable")
    registry.load("iris_classifier", "newer.joblib", None)
    for reader in (registry, other):
        assert reader.get("stable").version == 1 and reader.get("stable").description.task == "classification"
        assert reader.get("latest").version == 2 and reader.get("iris_classifier").version == 2
    assert other.get("stable") is pinned  # still reachable, so never dropped from the cache


def test_alias_change_warms_the_target_first_and_a_broken_target_is_refused(worker, model_dir):
    write_sklearn_classifier(model_dir, name="spare", auto_load=False)
    first = worker(auto_load=False, default_model="keep")
    first.load("keep", "iris_classifier.joblib", None)
    first.load("spare", "spare.joblib", None)
    first.set_alias("prod", "keep", None)
    write_sklearn_regressor(model_dir, name="spare")  # spare's file changes on disk
    fresh = worker(auto_load=False, default_model="keep")  # cannot load spare: its file changed
    fresh.warm()
    with pytest.raises(Conflict, match="changed on disk"):
        fresh.set_alias("prod", "spare", None)
    assert first.get("prod").name == "keep" and fresh.get("prod").name == "keep"
    assert fresh.state().aliases["prod"].model == "keep"
    entry = last_audit(fresh)
    assert (entry["action"], entry["target"], entry["outcome"]) == ("alias", "prod", "failure")


def test_alias_change_loads_the_target_before_the_alias_moves(worker, model_dir, monkeypatch):
    registry = worker(max_models=1)
    registry.warm()
    assert registry.loaded("iris_xgboost") is None
    calls = count_loads(monkeypatch, registry, "xgboost")
    registry.set_alias("prod", "iris_xgboost", None)
    assert calls == ["iris_xgboost.json"] and registry.loaded("iris_xgboost") is not None


@pytest.mark.parametrize(
    ("alias", "model", "version", "error"),
    [
        ("iris_xgboost", "iris_classifier", None, Conflict),
        ("prod", "nope", None, ModelNotFound),
        ("prod", "iris_classifier", 4, NotFound),
    ],
    ids=["alias named like a model", "unknown model", "unknown version"],
)
def test_invalid_alias_changes_are_refused_and_audited(worker, alias, model, version, error):
    registry = worker()
    registry.warm()
    generation = registry.store.published_generation()
    with pytest.raises(error):
        registry.set_alias(alias, model, version)
    assert registry.state().aliases == {} and registry.store.published_generation() == generation
    assert last_audit(registry)["outcome"] == "failure"


def test_loading_under_an_alias_name_is_a_conflict(worker, monkeypatch):
    registry = worker()
    registry.set_alias("prod", "iris_classifier", None)
    calls = count_loads(monkeypatch, registry)
    with pytest.raises(Conflict, match="'prod' is an alias"):
        registry.load("prod", "iris_classifier.joblib", None)
    assert calls == [] and "prod" not in registry.records()


def test_deleting_a_model_removes_its_aliases(worker):
    registry = worker()
    registry.set_alias("prod", "iris_xgboost", None)
    registry.unload("iris_xgboost", actor="frank")
    assert registry.state().aliases == {}
    with pytest.raises(ModelNotFound):
        registry.get("prod")
    entry = last_audit(registry)
    assert (entry["actor"], entry["action"], entry["outcome"]) == ("frank", "delete", "success")
    assert entry["details"] == {"versions": [1], "file": "iris_xgboost.json"}


# --- memory: LRU within max_models, idle unloading -----------------------------------------


@pytest.fixture
def three_models(worker, model_dir) -> tuple[ModelRegistry, Recorder]:
    """A worker with ``max_models: 2`` that loaded a, b and c in that order (a was evicted)."""
    write_sklearn_classifier(model_dir, name="third", auto_load=False)
    registry = worker(auto_load=False, max_models=2, default_model="a")
    recorder = recorder_on(registry)
    for name, file in (("a", "iris_classifier.joblib"), ("b", "iris_xgboost.json"), ("c", "third.joblib")):
        registry.load(name, file, None)
    return registry, recorder


def test_lru_evicts_the_least_recently_used_model(three_models):
    registry, recorder = three_models
    assert [s.name for s in registry.loaded_models()] == ["b", "c"]
    assert recorder.unloaded() == [("a", 1, "evicted")]
    assert set(registry.records()) == {"a", "b", "c"}  # evicted from memory, still served


def test_an_evicted_model_is_reloaded_lazily_on_next_use(three_models, monkeypatch):
    registry, recorder = three_models
    calls = count_loads(monkeypatch, registry)
    assert predict(registry, "a") == 0
    assert calls == ["iris_classifier.joblib"]
    assert [s.name for s in registry.loaded_models()] == ["c", "a"]
    assert recorder.unloaded()[-1] == ("b", 1, "evicted")
    assert ("loaded", "a", 1) in recorder.events[-2:]


def test_using_a_model_makes_it_recently_used(three_models):
    registry, recorder = three_models
    registry.get("b")  # now c is the least recently used
    registry.get("a")
    assert [s.name for s in registry.loaded_models()] == ["b", "a"]
    assert recorder.unloaded() == [("a", 1, "evicted"), ("c", 1, "evicted")]


def test_unload_idle_drops_idle_models_but_never_the_default_one(worker, model_dir):
    write_sklearn_classifier(model_dir, name="third")
    registry = worker(model_timeout=60)
    registry.warm()
    recorder = recorder_on(registry)
    served = {s.name: s for s in registry.loaded_models()}
    assert set(served) == {"iris_classifier", "iris_xgboost", "third"}
    served["iris_classifier"].last_used = 100.0  # the default model, idle the longest
    served["iris_xgboost"].last_used = 100.0
    served["third"].last_used = 130.0
    assert registry.unload_idle(now=159.9) == []
    assert registry.unload_idle(now=160.0) == [("iris_xgboost", 1)]
    assert recorder.unloaded() == [("iris_xgboost", 1, "idle")]
    assert registry.unload_idle(now=10_000.0) == [("third", 1)]
    assert [s.name for s in registry.loaded_models()] == ["iris_classifier"]
    assert registry.get("iris_xgboost").name == "iris_xgboost"  # loads again on next use


def test_unload_idle_keeps_the_version_an_explicit_default_alias_serves(worker):
    registry = worker(model_timeout=60)
    registry.set_alias("default", "iris_xgboost", None)
    for served in registry.loaded_models():
        served.last_used = 0.0
    assert registry.unload_idle(now=1_000.0) == [("iris_classifier", 1)]


def test_the_idle_reaper_unloads_in_the_background_and_ends_with_its_registry(worker):
    registry = worker(model_timeout=1)
    recorder = recorder_on(registry)
    before = set(threading.enumerate())
    registry.warm()
    [reaper] = [t for t in set(threading.enumerate()) - before if t.name == "modelserve-idle-reaper"]
    registry.loaded("iris_xgboost").last_used = 0.0
    poll_until(recorder.unloaded, what="the reaper to unload the idle model")
    assert recorder.unloaded() == [("iris_xgboost", 1, "idle")]  # the default model stays
    del registry
    gc.collect()
    reaper.join(timeout=5)
    assert not reaper.is_alive()


# --- provenance: the versions a model was trained with ----------------------------------------


def python_minor_changed() -> str:
    major, minor, _ = platform.python_version_tuple()
    return f"{major}.{int(minor) + 1}.0"


def test_a_sidecar_naming_another_sklearn_version_is_refused_naming_both(worker, model_dir):
    running = installed_version("scikit-learn")
    write_sklearn_classifier(model_dir, name="old", auto_load=False, training={"scikit-learn": "0.24.2"})
    registry = worker()
    with pytest.raises(ModelLoadError) as caught:
        registry.load("old", "old.joblib", None)
    message = caught.value.description
    assert "scikit-learn 0.24.2" in message and f"this server runs {running}" in message
    assert "allow_version_mismatch" in message
    assert "old" not in registry.records()
    assert last_audit(registry)["outcome"] == "failure"


def test_an_allowed_version_mismatch_is_served_and_flagged(worker, model_dir):
    running = installed_version("scikit-learn")
    write_sklearn_classifier(model_dir, name="old", auto_load=False, training={"scikit-learn": "0.24.2"})
    registry = worker(allow_version_mismatch=True)
    served = registry.load("old", "old.joblib", None)
    expected = {"scikit-learn": {"trained": "0.24.2", "running": running}}
    assert served.version_mismatch == expected and predict(registry, "old") == 0
    info = model_info(registry, served)
    assert info["version_mismatch"] == expected and info["training"] == {"scikit-learn": "0.24.2"}


@pytest.mark.parametrize(
    ("trained", "refused"),
    [
        (".".join(platform.python_version_tuple()[:2]) + ".0", False),
        (".".join(platform.python_version_tuple()[:2]) + ".99", False),
        (python_minor_changed(), True),
    ],
    ids=["same minor", "other patch", "other minor"],
)
def test_python_is_compared_on_major_and_minor(worker, model_dir, trained, refused):
    write_sklearn_classifier(model_dir, name="py", auto_load=False, training={"python": trained})
    registry = worker()
    if refused:
        with pytest.raises(ModelLoadError, match=rf"python {trained} \(this server runs {platform.python_version()}"):
            registry.load("py", "py.joblib", None)
    else:
        assert registry.load("py", "py.joblib", None).version_mismatch == {}


def test_matching_training_versions_are_served_without_a_flag(worker, model_dir):
    training = {
        "scikit-learn": installed_version("scikit-learn"),
        "python": platform.python_version(),
        "numpy": "0.0.1",  # not compared
    }
    write_sklearn_classifier(model_dir, name="fresh", auto_load=False, training=training)
    registry = worker()
    served = registry.load("fresh", "fresh.joblib", None)
    assert served.version_mismatch == {} and model_info(registry, served)["version_mismatch"] is None


def test_a_version_mismatch_keeps_a_file_out_of_auto_load(worker, model_dir):
    write_sklearn_classifier(model_dir, name="old", training={"scikit-learn": "0.24.2"})
    registry = worker()
    registry.warm()
    assert "old" not in registry.records()
    allowing = worker(allow_version_mismatch=True)
    allowing.warm()
    assert allowing.get("old").version_mismatch["scikit-learn"]["trained"] == "0.24.2"


# --- two workers, one state -------------------------------------------------------------------


def test_load_on_one_worker_is_seen_by_another(worker, model_dir):
    first, second = worker(), worker()
    first.warm()
    second.warm()
    write_sklearn_classifier(model_dir, name="custom_model", suffix=".pkl")
    first.load("new_model", "custom_model.pkl", "sklearn")
    assert second.loaded("new_model") is None
    served = second.get("new_model")
    assert served.record.file == "custom_model.pkl" and predict(second, "new_model") == 0


def test_unload_on_one_worker_is_seen_by_another(worker):
    first, second = worker(), worker()
    first.warm()
    assert second.get("iris_xgboost").name == "iris_xgboost"  # cached in the second worker
    recorder = recorder_on(second)
    first.unload("iris_xgboost")
    with pytest.raises(ModelNotFound):
        second.get("iris_xgboost")
    assert second.loaded("iris_xgboost") is None
    assert all(s.name != "iris_xgboost" for s in second.loaded_models())
    assert recorder.unloaded() == [("iris_xgboost", 1, "deleted")]
    with pytest.raises(ModelNotFound):
        first.unload("iris_xgboost")
    assert last_audit(first)["outcome"] == "failure"


def test_a_swap_on_one_worker_is_served_by_another_and_its_old_version_dropped(worker, model_dir):
    first, second = worker(), worker()
    first.warm()
    old = second.get("iris_classifier")
    recorder = recorder_on(second)
    write_custom_model(model_dir, name="threshold", labels=["short", "long"])
    first.load("iris_classifier", "threshold.py", None)
    new = second.get("iris_classifier")
    assert new is not old and new.version == 2 and new.record.model_type == "custom"
    assert new.labels == ["short", "long"] and predict(second, "default", KNOWN_ROWS["virginica"]) == 1
    assert second.loaded("iris_classifier", 1) is None
    assert {s.key for s in second.loaded_models()} == {("iris_classifier", 2), ("iris_xgboost", 1)}
    assert ("iris_classifier", 1, "replaced") in recorder.unloaded()


def test_a_model_deleted_and_loaded_again_from_another_file_is_not_served_from_a_stale_cache(worker, model_dir):
    write_sklearn_regressor(model_dir, name="replacement")
    first, second = worker(), worker()
    old = second.get("iris_xgboost")
    first.unload("iris_xgboost")
    first.load("iris_xgboost", "replacement.joblib", None)  # version 1 again, other content
    new = second.get("iris_xgboost")
    assert new.version == old.version == 1
    assert new is not old and new.record.file == "replacement.joblib" and new.description.task == "regression"


def test_a_rollback_on_one_worker_is_served_by_another(worker, model_dir):
    write_sklearn_regressor(model_dir, name="newer")
    first, second = worker(), worker()
    first.load("iris_classifier", "newer.joblib", None)
    assert second.get("iris_classifier").version == 2
    first.rollback("iris_classifier", None)
    assert second.get("iris_classifier").version == 1 and second.loaded("iris_classifier", 2) is None


def test_a_worker_started_later_loads_what_the_api_loaded(worker, model_dir):
    first = worker(auto_load=False)
    write_sklearn_classifier(model_dir, name="custom_model", suffix=".pkl")
    first.load("api_model", "custom_model.pkl", None)
    late = worker(auto_load=False)
    late.warm()
    assert late.loaded("api_model") is not None


def test_a_throttled_worker_still_finds_a_model_loaded_just_now(worker, model_dir):
    first, throttled = worker(), worker(registry={"sync_interval_ms": 60_000})
    assert throttled.get("iris_classifier").version == 1  # its view is now fresh for a minute
    write_sklearn_classifier(model_dir, name="late", auto_load=False)
    first.load("late", "late.joblib", None)
    assert throttled.get("late").name == "late"


def test_a_failed_load_is_not_retried_on_every_request_in_a_worker(worker, model_dir, monkeypatch):
    first = worker(auto_load=False)
    first.load("m", "iris_classifier.joblib", None)
    second = worker(auto_load=False)
    calls = []

    def failing_load(path: Path, metadata: Any) -> Any:
        calls.append(path.name)
        raise OSError("disk on fire")

    monkeypatch.setattr(second.plugins.adapters["sklearn"], "load", failing_load)
    for _ in range(3):
        with pytest.raises(ModelLoadError, match="disk on fire"):
            second.get("m")
    assert calls == ["iris_classifier.joblib"]
    assert predict(first, "m") == 0  # the worker that holds it serves on
    write_sklearn_regressor(model_dir, name="other")
    first.load("m", "other.joblib", None)  # a new version (other content) is a new attempt
    with pytest.raises(ModelLoadError, match="disk on fire"):
        second.get("m")
    assert calls == ["iris_classifier.joblib", "other.joblib"]


# --- the Redis backend: two replicas ----------------------------------------------------------


@pytest.fixture
def replica(worker, redis_prefix):
    """Build a registry over Redis (a replica); the test's own key prefix is cleaned up afterwards."""

    def build(**models: Any) -> ModelRegistry:
        return worker(registry={"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": redis_prefix}, **models)

    return build


def test_two_replicas_share_models_over_redis(replica, model_dir):
    first, second = replica(), replica()
    assert isinstance(first.store, RedisStateStore) and first.store.ping()
    first.warm()
    second.warm()
    assert set(second.records()) == {"iris_classifier", "iris_xgboost"}
    assert first.audit(10, 0)[1] == 2  # registered once, by the first replica

    write_sklearn_classifier(model_dir, name="shared", auto_load=False)
    first.load("shared", "shared.joblib", None)
    assert predict(second, "shared") == 0

    write_sklearn_regressor(model_dir, name="newer")
    old = second.get("iris_classifier")
    first.load("iris_classifier", "newer.joblib", None)
    new = second.get("iris_classifier")
    assert new is not old and new.version == 2 and second.loaded("iris_classifier", 1) is None

    second.set_alias("default", "shared", None)
    assert first.get("default").name == "shared"

    first.unload("shared")
    for replica_registry in (first, second):
        with pytest.raises(ModelNotFound):
            replica_registry.get("shared")
    assert second.get("default").name == "iris_classifier"  # the alias went with the model
    assert [e["action"] for e in second.audit(3, 0)[0]] == ["delete", "alias", "load"]


# --- refusals: what cannot be served never registers --------------------------------------------


def test_file_that_is_not_a_model_is_refused(worker, model_dir):
    import joblib

    registry = worker()
    registry.warm()
    joblib.dump({"not": "a model"}, model_dir / "dict.joblib")
    with pytest.raises(ModelLoadError, match="no predict method"):
        registry.load("dict", "dict.joblib", None)
    assert "dict" not in registry.records()


def test_unknown_model_type_names_the_installed_types(worker):
    registry = worker()
    with pytest.raises(ValidationFailed) as caught:
        registry.load("m", "iris_classifier.joblib", "tensorflow")
    message = caught.value.description
    assert "Unknown model_type 'tensorflow'" in message and "custom, sklearn, xgboost" in message
    assert caught.value.data["errors"] == {"json": {"model_type": ["Must be one of: custom, sklearn, xgboost."]}}
    assert last_audit(registry)["details"]["model_type"] == "tensorflow"


def test_unknown_suffix_without_model_type_is_refused(worker, model_dir):
    write_sklearn_classifier(model_dir, name="mystery", suffix=".bin")
    registry = worker()
    with pytest.raises(ValidationFailed, match=r"No adapter handles '\.bin' files") as caught:
        registry.load("mystery", "mystery.bin", None)
    assert ".joblib" in caught.value.description and "sklearn" in caught.value.description
    assert registry.load("mystery", "mystery.bin", "sklearn").record.model_type == "sklearn"


def test_model_type_in_the_sidecar_is_used(worker, model_dir):
    write_sklearn_classifier(model_dir, name="mystery", suffix=".bin", model_type="sklearn")
    assert worker().load("mystery", "mystery.bin", None).record.model_type == "sklearn"


def test_sidecar_sha256_mismatch_is_refused(worker, model_dir):
    write_sklearn_classifier(model_dir, name="tampered", sha256="0" * 64)
    registry = worker()
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        registry.load("tampered", "tampered.joblib", None)
    registry.warm()
    assert "tampered" not in registry.records()


def test_sidecar_sha256_match_is_accepted(worker, model_dir):
    path = write_sklearn_classifier(model_dir, name="signed")
    write_sidecar(path, sha256=sha256_of(path))
    assert worker().load("signed", "signed.joblib", None).record.sha256 == sha256_of(path)


def test_file_changed_on_disk_after_registration_is_a_conflict_on_a_fresh_worker(worker, model_dir):
    write_sklearn_classifier(model_dir, name="weights", suffix=".pkl")
    first = worker()
    first.load("served_name", "weights.pkl", None)
    write_sklearn_regressor(model_dir, name="weights").rename(model_dir / "weights.pkl")
    fresh = worker()
    with pytest.raises(Conflict, match="changed on disk"):
        fresh.get("served_name")
    assert predict(first, "served_name") == 0  # the worker that holds it keeps serving what was loaded


def test_changed_file_is_served_as_a_new_version_after_loading_it_again(worker, model_dir):
    write_sklearn_classifier(model_dir, name="weights", suffix=".pkl")
    first = worker()
    first.load("served_name", "weights.pkl", None)
    write_sklearn_regressor(model_dir, name="weights").rename(model_dir / "weights.pkl")
    assert first.load("served_name", "weights.pkl", None).version == 2
    fresh = worker()
    assert fresh.get("served_name").description.task == "regression"
    with pytest.raises(Conflict, match="changed on disk"):  # version 1's content is gone
        fresh.rollback("served_name", None)


def test_missing_file_is_not_found(worker):
    with pytest.raises(NotFound):
        worker().load("m", "missing.joblib", None)


def test_labels_count_must_match_the_classes(worker, model_dir):
    write_sklearn_classifier(model_dir, name="two_labels", labels=["a", "b"], auto_load=False)
    registry = worker()
    with pytest.raises(ModelLoadError, match="2 labels in the metadata but the model has 3 classes"):
        registry.load("two_labels", "two_labels.joblib", None)
    assert "two_labels" not in registry.records()


def test_regressor_with_labels_is_refused(worker, model_dir):
    write_sklearn_regressor(model_dir, labels=["small", "large"], auto_load=False)
    registry = worker()
    with pytest.raises(ModelLoadError, match="labels are given but the model is a regressor"):
        registry.load("petal_width", "petal_width.joblib", None)


def test_regressor_without_labels_is_served(worker, model_dir):
    write_sklearn_regressor(model_dir)
    served = worker().load("petal_width", "petal_width.joblib", None)
    assert served.description.task == "regression" and served.labels is None and served.predict_proba is None


def test_feature_names_count_must_match(worker, model_dir):
    write_sklearn_classifier(model_dir, name="three_names", feature_names=["a", "b", "c"], auto_load=False)
    with pytest.raises(ModelLoadError, match="3 feature names for 4 features"):
        worker().load("three_names", "three_names.joblib", None)


def test_trial_prediction_failure_is_a_load_error(worker, model_dir):
    source = (
        "class Broken:\n"
        "    classes_ = [0, 1]\n"
        "    n_features = 4\n"
        "    def load(self):\n"
        "        pass\n"
        "    def predict(self, X):\n"
        "        raise ValueError('cannot predict')\n"
    )
    write_custom_model(model_dir, name="broken", source=source)
    registry = worker()
    with pytest.raises(ModelLoadError, match="trial prediction failed: ValueError: cannot predict"):
        registry.load("broken", "broken.py", None)
    assert "broken" not in registry.records()


def test_records_are_shared_as_json(worker):
    registry = worker()
    registry.warm()
    record = registry.store.read().models["iris_classifier"].current_record
    assert json.loads(json.dumps(record.metadata)) == record.metadata
    assert record.file == "iris_classifier.joblib" and len(record.sha256) == 64 and record.version == 1
