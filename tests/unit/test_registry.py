"""The model registry, built directly: auto-load, limits, integrity checks, and two workers sharing state.

Each ``worker()`` is a registry with its own plugin manager and cache over the
same state directory, as two gunicorn workers are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.adapters import AdapterSettings
from app.config import ModelsSection
from app.errors import Conflict, ModelLimitReached, ModelLoadError, ModelNotFound, NotFound, ValidationFailed
from app.model_files import sha256_of
from app.plugin_manager import build_plugin_manager
from app.registry import ModelRegistry
from app.state_store import SQLiteStateStore
from tests.factories import (
    IRIS_LABELS,
    KNOWN_ROWS,
    write_custom_model,
    write_sidecar,
    write_sklearn_classifier,
    write_sklearn_regressor,
)

SETOSA = KNOWN_ROWS["setosa"]


@pytest.fixture
def worker(tmp_path: Path, model_dir: Path):
    """Build one worker's registry over ``model_dir`` and the shared state; keywords set ``models.*``."""

    def build(**models: object) -> ModelRegistry:
        config = ModelsSection().load({"model_directory": str(model_dir), **models})
        plugins = build_plugin_manager(tmp_path / "plugins", AdapterSettings())
        return ModelRegistry(SQLiteStateStore(tmp_path / "state"), plugins, config, sync_interval_ms=0)

    return build


def predict(registry: ModelRegistry, name: str, row: list[float] = SETOSA) -> int:
    return int(registry.get(name).model.predict(np.asarray([row], dtype=np.float64))[0])


# --- auto-load at start-up ------------------------------------------------------------


def test_warm_auto_loads_the_directory(worker):
    registry = worker()
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}
    assert registry.loaded_count() == 2
    served = registry.get("iris_classifier")
    assert served.labels == IRIS_LABELS and served.record.origin == "auto_load"
    assert served.record.model_type == "sklearn" and registry.get("iris_xgboost").record.model_type == "xgboost"


def test_warm_is_idempotent(worker):
    registry = worker()
    registry.warm()
    generation = registry.store.generation()
    registry.warm()
    worker().warm()  # a second worker starting registers nothing new either
    assert registry.store.generation() == generation


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


def test_max_models_is_respected_at_auto_load(worker, model_dir):
    for i in range(4):
        write_sklearn_classifier(model_dir, name=f"extra{i}")
    registry = worker(max_models=3)
    registry.warm()
    assert set(registry.records()) == {"extra0", "extra1", "extra2"}  # in file-name order
    assert registry.loaded_count() == 3


def test_max_models_is_respected_across_workers_at_auto_load(worker, model_dir):
    for i in range(4):
        write_sklearn_classifier(model_dir, name=f"extra{i}")
    first, second = worker(max_models=3), worker(max_models=3)
    first.warm()
    second.warm()
    assert len(second.records()) == 3 == len(first.store.records())


def test_max_models_is_respected_by_load(worker, model_dir):
    registry = worker(max_models=2)
    registry.warm()
    write_sklearn_classifier(model_dir, name="third", auto_load=False)
    with pytest.raises(ModelLimitReached, match=r"max_models \(2\)"):
        registry.load("third", "third.joblib", None)
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}
    registry.load("iris_classifier", "third.joblib", None)  # replacing a name needs no free slot
    assert registry.records()["iris_classifier"].file == "third.joblib"


def test_broken_file_in_the_directory_does_not_stop_the_others(worker, model_dir):
    write_sidecar(model_dir / "broken.joblib", colour="red")
    write_sklearn_classifier(model_dir, name="broken")  # sidecar above is invalid
    registry = worker()
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}


def test_file_that_cannot_be_loaded_does_not_take_a_slot_at_auto_load(worker, model_dir):
    (model_dir / "aaa_broken.joblib").write_bytes(b"not a pickle")
    registry = worker(max_models=2)
    registry.warm()
    assert set(registry.records()) == {"iris_classifier", "iris_xgboost"}


# --- two workers, one state ------------------------------------------------------------


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
    first.unload("iris_xgboost")
    with pytest.raises(ModelNotFound):
        second.get("iris_xgboost")
    assert second.loaded("iris_xgboost") is None
    with pytest.raises(ModelNotFound):
        first.unload("iris_xgboost")


def test_replacing_a_model_on_one_worker_replaces_it_on_another(worker, model_dir):
    first, second = worker(), worker()
    first.warm()
    old = second.get("iris_classifier")
    write_custom_model(model_dir, name="threshold", labels=["short", "long"])
    first.load("iris_classifier", "threshold.py", None)
    new = second.get("iris_classifier")
    assert new is not old and new.record.model_type == "custom" and new.labels == ["short", "long"]


def test_a_worker_started_later_loads_what_the_api_loaded(worker, model_dir):
    first = worker(auto_load=False)
    write_sklearn_classifier(model_dir, name="custom_model", suffix=".pkl")
    first.load("api_model", "custom_model.pkl", None)
    late = worker(auto_load=False)
    late.warm()
    assert late.loaded("api_model") is not None


# --- refusals: the previous model keeps serving ----------------------------------------


def test_corrupt_file_is_refused_and_the_previous_model_keeps_serving(worker, model_dir):
    first, second = worker(), worker()
    first.warm()
    before = first.get("iris_classifier")
    (model_dir / "corrupt.joblib").write_bytes(b"\x80\x04 this is not a pickle")
    with pytest.raises(ModelLoadError, match="sklearn adapter could not load corrupt.joblib"):
        first.load("iris_classifier", "corrupt.joblib", None)
    assert first.get("iris_classifier") is before
    assert second.get("iris_classifier").record.file == "iris_classifier.joblib"
    assert predict(second, "iris_classifier") == 0


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


def test_changed_file_named_after_its_stem_is_a_conflict_on_a_fresh_worker_without_auto_load(worker, model_dir):
    write_sklearn_classifier(model_dir, name="weights", suffix=".pkl")
    worker(auto_load=False).load("weights", "weights.pkl", None)
    write_sklearn_regressor(model_dir, name="weights").rename(model_dir / "weights.pkl")
    with pytest.raises(Conflict):
        worker(auto_load=False).get("weights")


def test_changed_auto_load_file_is_adopted_when_a_worker_starts(worker, model_dir):
    """Current behaviour: auto-load re-registers a same-named, same-file record whose content changed."""
    write_sklearn_classifier(model_dir, name="weights", suffix=".pkl")
    first = worker()
    first.warm()
    write_sklearn_regressor(model_dir, name="weights").rename(model_dir / "weights.pkl")
    fresh = worker()
    fresh.warm()
    assert fresh.get("weights").description.task == "regression"
    assert first.get("weights").description.task == "regression"  # every worker follows the shared state


def test_changed_file_is_served_again_after_loading_it_again(worker, model_dir):
    write_sklearn_classifier(model_dir, name="weights", suffix=".pkl")
    first = worker()
    first.load("served_name", "weights.pkl", None)
    write_sklearn_regressor(model_dir, name="weights").rename(model_dir / "weights.pkl")
    first.load("served_name", "weights.pkl", None)
    assert worker().get("served_name").description.task == "regression"


def test_missing_file_is_not_found(worker):
    with pytest.raises(NotFound):
        worker().load("m", "missing.joblib", None)


# --- the default alias --------------------------------------------------------------------


def test_default_resolves_to_the_configured_default_model(worker):
    registry = worker()
    assert registry.get("default").name == "iris_classifier"
    assert registry.aliases_of("iris_classifier") == ["default"] and registry.aliases_of("iris_xgboost") == []


def test_default_model_is_configurable(worker):
    assert worker(default_model="iris_xgboost").get("default").name == "iris_xgboost"


def test_default_model_that_is_not_loaded_is_not_found(worker):
    with pytest.raises(ModelNotFound, match="'default'"):
        worker(default_model="nothing_here").get("default")


def test_a_model_named_default_wins_over_the_alias(worker, model_dir):
    registry = worker()
    registry.load("default", "iris_xgboost.json", None)
    assert registry.get("default").record.file == "iris_xgboost.json"


# --- labels -----------------------------------------------------------------------------


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
    with pytest.raises(ModelLoadError, match="trial prediction failed: ValueError: cannot predict"):
        worker().load("broken", "broken.py", None)


def test_records_are_shared_as_json(worker):
    registry = worker()
    registry.warm()
    record = registry.store.records()["iris_classifier"]
    assert json.loads(json.dumps(record.metadata)) == record.metadata
    assert record.file == "iris_classifier.joblib" and len(record.sha256) == 64
