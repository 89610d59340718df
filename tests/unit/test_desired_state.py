"""The desired state document and the pure changes allowed on it (no store, no files, no models)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app import desired_state as ds
from app.desired_state import AliasTarget, DesiredState, ModelRecord, ModelState
from app.errors import Conflict, ModelNotFound, NotFound
from tests.factories import record

DEFAULT_MODEL = "iris_classifier"


def state_with(*records: ModelRecord) -> DesiredState:
    """A state where each record was added in turn with :func:`ds.add_version`."""
    state = DesiredState()
    for r in records:
        ds.add_version(state, r)
    return state


# --- add_version -----------------------------------------------------------------------


def test_add_version_of_a_new_model_is_version_one():
    state = DesiredState()
    added = ds.add_version(state, record("m"))
    assert added == record("m", version=1)
    model = state.models["m"]
    assert (model.current, model.previous, sorted(model.versions)) == (1, None, [1])
    assert model.current_record is added


def test_add_version_of_the_current_file_and_sha_is_a_no_op():
    state = state_with(record("m"))
    before = state.to_json()
    again = ds.add_version(state, record("m", origin="auto_load", registered_at="later"))
    assert again == record("m", version=1)  # the original record, not the new one
    assert state.to_json() == before


def test_add_version_of_the_same_file_with_another_model_type_is_a_new_version():
    state = state_with(record("m"))
    added = ds.add_version(state, record("m", model_type="custom"))
    assert added.version == 2 and state.models["m"].current == 2


@pytest.mark.parametrize(
    "change", [{"file": "other.joblib"}, {"sha256": "b" * 64}], ids=["another file", "same file, new content"]
)
def test_add_version_of_a_new_file_or_content_makes_it_current(change):
    state = state_with(record("m"))
    added = ds.add_version(state, record("m", **change))
    model = state.models["m"]
    assert added.version == 2 and added == record("m", version=2, **change)
    assert (model.current, model.previous, sorted(model.versions)) == (2, 1, [1, 2])
    assert model.versions[1] == record("m", version=1)


def test_add_version_numbers_follow_the_highest_version_not_the_current_one():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    ds.rollback(state, "m", 1)
    added = ds.add_version(state, record("m", sha256="c" * 64))
    assert added.version == 3
    assert (state.models["m"].current, state.models["m"].previous) == (3, 1)


def test_add_version_clears_the_unloaded_tombstone():
    state = state_with(record("m"))
    ds.remove_model(state, "m")
    assert state.unloaded == {"m": "m.joblib"}
    added = ds.add_version(state, record("m"))
    assert added.version == 1 and state.unloaded == {}


def test_add_version_under_an_alias_name_is_a_conflict_and_changes_nothing():
    state = state_with(record("m"))
    ds.set_alias(state, "prod", "m", None)
    before = state.to_json()
    with pytest.raises(Conflict, match="'prod' is an alias"):
        ds.add_version(state, record("prod"))
    assert state.to_json() == before


# --- adopt_file (start-up auto-loading) --------------------------------------------


def test_adopt_file_registers_a_new_file():
    state = DesiredState()
    adopted = ds.adopt_file(state, record("m", origin="auto_load"))
    assert adopted is not None and adopted.version == 1 and state.models["m"].current_record is adopted


def test_adopt_file_of_an_unchanged_file_returns_the_current_record():
    state = state_with(record("m"))
    assert ds.adopt_file(state, record("m", origin="auto_load")) == record("m", version=1)
    assert sorted(state.models["m"].versions) == [1]


def test_adopt_file_skips_a_file_unloaded_through_the_api():
    state = state_with(record("m"))
    ds.remove_model(state, "m")
    before = state.to_json()
    assert ds.adopt_file(state, record("m", origin="auto_load")) is None
    assert state.to_json() == before


def test_adopt_file_takes_another_file_for_a_tombstoned_name():
    state = state_with(record("m"))
    ds.remove_model(state, "m")
    adopted = ds.adopt_file(state, record("m", file="renamed.joblib", origin="auto_load"))
    assert adopted is not None and adopted.file == "renamed.joblib" and state.unloaded == {}


def test_adopt_file_skips_a_name_held_by_another_file():
    state = state_with(record("m", file="api_loaded.pkl"))
    before = state.to_json()
    assert ds.adopt_file(state, record("m", file="m.joblib", origin="auto_load")) is None
    assert state.to_json() == before


def test_adopt_file_skips_a_name_that_is_an_alias():
    state = state_with(record("m"))
    ds.set_alias(state, "prod", "m", None)
    assert ds.adopt_file(state, record("prod", origin="auto_load")) is None
    assert set(state.models) == {"m"}


def test_adopt_file_of_changed_content_is_a_new_version():
    state = state_with(record("m"))
    adopted = ds.adopt_file(state, record("m", sha256="b" * 64, origin="auto_load"))
    assert adopted is not None and adopted.version == 2
    assert (state.models["m"].current, state.models["m"].previous) == (2, 1)


# --- remove_model ------------------------------------------------------------------


def test_remove_model_tombstones_its_current_file_and_returns_it():
    state = state_with(record("m"), record("m", file="m2.joblib"), record("other"))
    removed = ds.remove_model(state, "m")
    assert isinstance(removed, ModelState) and sorted(removed.versions) == [1, 2]
    assert set(state.models) == {"other"}
    assert state.unloaded == {"m": "m2.joblib"}


def test_remove_model_removes_the_aliases_pointing_at_it():
    state = state_with(record("m", file="m1.joblib"), record("m", file="m2.joblib"), record("other"))
    ds.set_alias(state, "prod", "m", None)
    ds.set_alias(state, "pinned", "m", 1)
    ds.set_alias(state, "elsewhere", "other", None)
    ds.remove_model(state, "m")
    assert state.aliases == {"elsewhere": AliasTarget("other", None)}


def test_remove_unknown_model_is_model_not_found():
    state = state_with(record("m"))
    with pytest.raises(ModelNotFound, match="'nope'"):
        ds.remove_model(state, "nope")
    assert state.unloaded == {}


# --- aliases ------------------------------------------------------------------------


def test_set_alias_follows_the_current_version_by_default():
    state = state_with(record("m"))
    assert ds.set_alias(state, "prod", "m", None) == AliasTarget("m", None)
    assert state.resolve("prod", DEFAULT_MODEL) == ("m", 1)
    ds.add_version(state, record("m", sha256="b" * 64))
    assert state.resolve("prod", DEFAULT_MODEL) == ("m", 2)


def test_set_alias_pinned_to_a_version_stays_on_it():
    state = state_with(record("m"))
    assert ds.set_alias(state, "stable", "m", 1) == AliasTarget("m", 1)
    ds.add_version(state, record("m", sha256="b" * 64))
    assert state.resolve("stable", DEFAULT_MODEL) == ("m", 1)
    assert state.resolve("m", DEFAULT_MODEL) == ("m", 2)


def test_set_alias_moves_an_existing_alias():
    state = state_with(record("m"), record("other"))
    ds.set_alias(state, "prod", "m", None)
    ds.set_alias(state, "prod", "other", 1)
    assert state.aliases == {"prod": AliasTarget("other", 1)}


def test_set_alias_named_like_a_model_is_a_conflict():
    state = state_with(record("m"), record("other"))
    with pytest.raises(Conflict, match="'other' is a model name"):
        ds.set_alias(state, "other", "m", None)
    assert state.aliases == {}


def test_set_alias_to_an_unknown_model_is_model_not_found():
    state = state_with(record("m"))
    with pytest.raises(ModelNotFound, match="'nope'"):
        ds.set_alias(state, "prod", "nope", None)
    assert state.aliases == {}


def test_set_alias_to_an_unknown_version_is_not_found_listing_the_versions():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    with pytest.raises(NotFound, match=r"no version 3; it has \[1, 2\]") as caught:
        ds.set_alias(state, "prod", "m", 3)
    assert not isinstance(caught.value, ModelNotFound)
    assert state.aliases == {}


def test_remove_alias_returns_its_target():
    state = state_with(record("m"))
    ds.set_alias(state, "prod", "m", 1)
    assert ds.remove_alias(state, "prod") == AliasTarget("m", 1)
    assert state.aliases == {}


def test_remove_unknown_alias_is_not_found():
    with pytest.raises(NotFound, match="No alias 'prod'"):
        ds.remove_alias(state_with(record("m")), "prod")


# --- rollback -----------------------------------------------------------------------


def test_rollback_to_the_previous_version():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    assert ds.rollback(state, "m", None) == (2, 1)
    model = state.models["m"]
    assert (model.current, model.previous, sorted(model.versions)) == (1, 2, [1, 2])
    assert ds.rollback(state, "m", None) == (1, 2)  # rolling back a rollback undoes it


def test_rollback_to_an_explicit_version():
    state = state_with(record("m"), record("m", sha256="b" * 64), record("m", sha256="c" * 64))
    assert ds.rollback(state, "m", 1) == (3, 1)
    assert (state.models["m"].current, state.models["m"].previous) == (1, 3)


def test_rollback_without_a_previous_version_is_a_conflict():
    state = state_with(record("m"))
    with pytest.raises(Conflict, match="no previous version"):
        ds.rollback(state, "m", None)
    assert state.models["m"].current == 1


def test_rollback_to_the_current_version_is_refused():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    with pytest.raises(Conflict, match="Version 2 of 'm' is already current"):
        ds.rollback(state, "m", 2)
    assert (state.models["m"].current, state.models["m"].previous) == (2, 1)


def test_rollback_to_an_unknown_version_is_not_found():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    with pytest.raises(NotFound, match=r"no version 7; it has \[1, 2\]"):
        ds.rollback(state, "m", 7)


def test_rollback_of_an_unknown_model_is_model_not_found():
    with pytest.raises(ModelNotFound):
        ds.rollback(DesiredState(), "m", None)


# --- resolve and aliases_of -----------------------------------------------------------


def test_resolve_a_model_name_gives_its_current_version():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    assert state.resolve("m", DEFAULT_MODEL) == ("m", 2)
    assert state.resolve("unknown", DEFAULT_MODEL) is None


def test_resolve_an_alias():
    state = state_with(record("m"), record("m", sha256="b" * 64))
    ds.set_alias(state, "prod", "m", None)
    ds.set_alias(state, "stable", "m", 1)
    assert state.resolve("prod", DEFAULT_MODEL) == ("m", 2)
    assert state.resolve("stable", DEFAULT_MODEL) == ("m", 1)


def test_default_is_an_implicit_alias_of_the_configured_default_model():
    state = state_with(record(DEFAULT_MODEL), record("other"))
    assert state.resolve("default", DEFAULT_MODEL) == (DEFAULT_MODEL, 1)
    assert state.resolve("default", "other") == ("other", 1)
    assert state.resolve("default", "not_registered") is None
    assert state.aliases_of(DEFAULT_MODEL, DEFAULT_MODEL) == {"default": None}
    assert state.aliases_of("other", DEFAULT_MODEL) == {}


def test_an_explicit_default_alias_replaces_the_implicit_one():
    state = state_with(record(DEFAULT_MODEL), record("other"))
    ds.set_alias(state, "default", "other", None)
    assert state.resolve("default", DEFAULT_MODEL) == ("other", 1)
    assert state.aliases_of(DEFAULT_MODEL, DEFAULT_MODEL) == {}
    assert state.aliases_of("other", DEFAULT_MODEL) == {"default": None}
    ds.remove_alias(state, "default")
    assert state.resolve("default", DEFAULT_MODEL) == (DEFAULT_MODEL, 1)


def test_a_model_literally_named_default_wins_over_the_implicit_alias():
    state = state_with(record(DEFAULT_MODEL), record("default", file="d.joblib"))
    assert state.resolve("default", DEFAULT_MODEL) == ("default", 1)
    assert state.aliases_of(DEFAULT_MODEL, DEFAULT_MODEL) == {}
    with pytest.raises(Conflict):
        ds.set_alias(state, "default", DEFAULT_MODEL, None)


@pytest.mark.parametrize("target", [AliasTarget("gone", None), AliasTarget("m", 9)], ids=["model gone", "version gone"])
def test_a_dangling_alias_resolves_to_nothing(target):
    state = state_with(record("m"))
    state.aliases["prod"] = target  # as a hand-edited or older document could hold
    assert state.resolve("prod", DEFAULT_MODEL) is None


def test_aliases_of_lists_pinned_and_following_aliases():
    state = state_with(record("m"), record("m", sha256="b" * 64), record("other"))
    ds.set_alias(state, "prod", "m", None)
    ds.set_alias(state, "stable", "m", 1)
    ds.set_alias(state, "x", "other", None)
    assert state.aliases_of("m", DEFAULT_MODEL) == {"prod": None, "stable": 1}


# --- trust_file ------------------------------------------------------------------------


def test_trust_file_records_who_trusted_which_content_once():
    state = DesiredState()
    assert ds.trust_file(state, "f" * 64, "m.pkl", "admin") is True
    entry = state.trusted["f" * 64]
    assert (entry["file"], entry["by"]) == ("m.pkl", "admin") and entry["at"].endswith("Z")
    assert ds.trust_file(state, "f" * 64, "renamed.pkl", "someone_else") is False
    assert state.trusted == {"f" * 64: entry}


# --- serialisation --------------------------------------------------------------------


def test_to_json_from_json_round_trip():
    state = state_with(
        record("m", metadata={"nested": {"x": [1, 2]}, "labels": ["a"]}),
        record("m", file="m2.joblib", sha256="b" * 64, origin="auto_load"),
        record("other"),
        record("gone"),
    )
    ds.set_alias(state, "stable", "m", 1)
    ds.set_alias(state, "prod", "other", None)
    ds.remove_model(state, "gone")
    ds.trust_file(state, "f" * 64, "m.pkl", "admin")
    doc = json.loads(json.dumps(state.to_json()))  # what the stores keep: JSON text
    restored = DesiredState.from_json(doc, generation=7)
    assert restored == replace(state, generation=7)
    assert restored.models["m"].versions[2] == record(
        "m", file="m2.joblib", sha256="b" * 64, origin="auto_load", version=2
    )
    assert restored.to_json() == state.to_json()


@pytest.mark.parametrize("doc", [None, {}], ids=["none", "empty"])
def test_from_json_of_nothing_is_an_empty_state(doc):
    assert DesiredState.from_json(doc, generation=0) == DesiredState()


def test_to_json_holds_versions_under_string_keys():
    doc = state_with(record("m")).to_json()
    assert list(doc["models"]["m"]["versions"]) == ["1"]
    assert doc["models"]["m"]["versions"]["1"]["version"] == 1
    assert "generation" not in doc  # the store keeps it next to the document
