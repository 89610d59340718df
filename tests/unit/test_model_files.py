"""Which files a request may name, the sidecar metadata, and file digests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from app.errors import ModelLoadError, ModelPathError, NotFound
from app.model_files import read_sidecar, relative_to_model_dir, resolve_model_path, sha256_of
from tests.factories import IRIS_FEATURES, IRIS_LABELS, write_sidecar


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory laid out as in the spec: ``models/trained`` with one file, plus a secret outside."""
    trained = tmp_path / "project" / "models" / "trained"
    trained.mkdir(parents=True)
    (trained / "model.pkl").write_bytes(b"model bytes")
    (tmp_path / "secret.pkl").write_bytes(b"outside")
    monkeypatch.chdir(tmp_path / "project")
    return tmp_path / "project"


@pytest.fixture
def trained(project: Path) -> Path:
    return project / "models" / "trained"


# --- resolve_model_path: what is allowed --------------------------------------


def test_file_relative_to_the_model_directory(trained):
    assert resolve_model_path(trained, "model.pkl") == (trained / "model.pkl").resolve()


def test_spec_form_relative_to_the_working_directory(trained):
    assert resolve_model_path(Path("models/trained"), "models/trained/model.pkl") == (trained / "model.pkl").resolve()


def test_model_directory_given_relative_to_the_working_directory(trained):
    assert resolve_model_path(Path("models/trained"), "model.pkl") == (trained / "model.pkl").resolve()


def test_file_in_a_subdirectory(trained):
    (trained / "v2").mkdir()
    (trained / "v2" / "model.pkl").write_bytes(b"v2")
    resolved = resolve_model_path(trained, "v2/model.pkl")
    assert resolved == (trained / "v2" / "model.pkl").resolve()
    assert relative_to_model_dir(trained, resolved) == "v2/model.pkl"


def test_backslashes_are_separators(trained):
    (trained / "v2").mkdir()
    (trained / "v2" / "model.pkl").write_bytes(b"v2")
    assert resolve_model_path(trained, "v2\\model.pkl") == (trained / "v2" / "model.pkl").resolve()


def test_symlink_inside_pointing_inside_is_followed(trained):
    (trained / "alias.pkl").symlink_to(trained / "model.pkl")
    resolved = resolve_model_path(trained, "alias.pkl")
    assert resolved == (trained / "model.pkl").resolve()
    assert relative_to_model_dir(trained, resolved) == "model.pkl"


def test_model_directory_behind_a_symlink(tmp_path, trained):
    link = tmp_path / "link-to-trained"
    link.symlink_to(trained, target_is_directory=True)
    assert resolve_model_path(link, "model.pkl") == (trained / "model.pkl").resolve()


def test_same_name_outside_the_directory_in_the_working_directory_is_not_used(project, trained):
    (project / "model.pkl").write_bytes(b"not this one")
    assert resolve_model_path(trained, "model.pkl") == (trained / "model.pkl").resolve()


# --- resolve_model_path: what is refused --------------------------------------


@pytest.mark.parametrize(
    ("requested", "text"),
    [
        pytest.param("../secret.pkl", "'..'", id="dotdot"),
        pytest.param("../../secret.pkl", "'..'", id="dotdot-twice"),
        pytest.param("models/trained/../../../secret.pkl", "'..'", id="dotdot-inside"),
        pytest.param("..\\..\\secret.pkl", "'..'", id="dotdot-backslash"),
        pytest.param("~/secret.pkl", "relative path", id="home"),
        pytest.param("~root/x.pkl", "relative path", id="home-of-user"),
        pytest.param("C:model.pkl", "relative path", id="drive"),
        pytest.param("", "relative path", id="empty"),
        pytest.param(".", "relative path", id="dot"),
        pytest.param("\\secret.pkl", "relative path", id="backslash-root"),
    ],
)
def test_refused_before_anything_is_read(trained, requested, text):
    with pytest.raises(ModelPathError, match=text):
        resolve_model_path(trained, requested)


def test_absolute_path_is_refused_even_inside_the_directory(trained):
    with pytest.raises(ModelPathError, match="relative path"):
        resolve_model_path(trained, str(trained / "model.pkl"))


def test_symlink_inside_pointing_outside_is_refused(tmp_path, trained):
    (trained / "escape.pkl").symlink_to(tmp_path / "secret.pkl")
    with pytest.raises(ModelPathError, match="symbolic link"):
        resolve_model_path(trained, "escape.pkl")
    with pytest.raises(ModelPathError, match="symbolic link"):
        resolve_model_path(Path("models/trained"), "models/trained/escape.pkl")


def test_symlinked_directory_inside_pointing_outside_is_refused(tmp_path, trained):
    (trained / "up").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ModelPathError, match="symbolic link"):
        resolve_model_path(trained, "up/secret.pkl")


def test_directory_is_refused(trained):
    (trained / "sub.pkl").mkdir()
    with pytest.raises(ModelPathError, match="regular file"):
        resolve_model_path(trained, "sub.pkl")


def test_device_file_via_symlink_is_refused(trained):
    (trained / "null.pkl").symlink_to("/dev/null")
    with pytest.raises(ModelPathError):
        resolve_model_path(trained, "null.pkl")


def test_fifo_inside_the_directory_is_refused(trained):
    os.mkfifo(trained / "pipe.pkl")
    with pytest.raises(ModelPathError, match="regular file"):
        resolve_model_path(trained, "pipe.pkl")


@pytest.mark.parametrize("requested", ["missing.pkl", "models/trained/missing.pkl", "nowhere/model.pkl"])
def test_missing_file_is_not_found(trained, requested):
    with pytest.raises(NotFound, match="No model file"):
        resolve_model_path(trained, requested)


def test_dangling_symlink_is_not_found(trained):
    (trained / "dangling.pkl").symlink_to(trained / "gone.pkl")
    with pytest.raises(NotFound):
        resolve_model_path(trained, "dangling.pkl")


@pytest.mark.parametrize(
    "requested",
    [
        pytest.param("model\x00.pkl", id="nul-byte"),
        pytest.param("a" * 300 + ".pkl", id="name-too-long"),
    ],
)
def test_unusable_names_are_client_errors(trained, requested):
    with pytest.raises((ModelPathError, NotFound)):
        resolve_model_path(trained, requested)


def test_symlink_loop_is_a_client_error(trained):
    (trained / "loop1.pkl").symlink_to(trained / "loop2.pkl")
    (trained / "loop2.pkl").symlink_to(trained / "loop1.pkl")
    with pytest.raises((ModelPathError, NotFound)):
        resolve_model_path(trained, "loop1.pkl")


# --- read_sidecar --------------------------------------------------------------


def test_no_sidecar_is_empty_metadata(trained):
    assert read_sidecar(trained / "model.pkl") == {}


def test_valid_sidecar(trained):
    metadata = {
        "name": "iris_classifier",
        "version": "2.1",
        "description": "Iris",
        "model_type": "sklearn",
        "labels": IRIS_LABELS,
        "feature_names": IRIS_FEATURES,
        "sha256": "0" * 64,
        "training": {"scikit-learn": "1.5.0"},
        "auto_load": False,
    }
    write_sidecar(trained / "model.pkl", **metadata)
    assert read_sidecar(trained / "model.pkl") == metadata


def test_custom_model_sidecar_fields(trained):
    write_sidecar(trained / "model.py", class_name="Threshold", task="regression", n_features=3)
    assert read_sidecar(trained / "model.py") == {"class_name": "Threshold", "task": "regression", "n_features": 3}


def test_sidecar_is_named_after_the_stem(trained):
    (trained / "model.meta.json").write_text(json.dumps({"version": "7"}), encoding="utf-8")
    assert read_sidecar(trained / "model.pkl") == {"version": "7"}
    assert read_sidecar(trained / "other.pkl") == {}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{not json", id="broken"),
        pytest.param("", id="empty-file"),
        pytest.param('{"version": "1"', id="truncated"),
    ],
)
def test_sidecar_that_is_not_json(trained, text):
    (trained / "model.meta.json").write_text(text, encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not readable JSON"):
        read_sidecar(trained / "model.pkl")


def test_sidecar_that_is_not_utf8(trained):
    (trained / "model.meta.json").write_bytes(b'{"version": "\xff"}')
    with pytest.raises(ModelLoadError, match="not readable JSON"):
        read_sidecar(trained / "model.pkl")


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        pytest.param({"colour": "red"}, "colour", id="unknown-key"),
        pytest.param({"sha256": "abc"}, "sha256", id="sha-short"),
        pytest.param({"sha256": "A" * 64}, "sha256", id="sha-uppercase"),
        pytest.param({"sha256": "g" * 64}, "sha256", id="sha-not-hex"),
        pytest.param({"labels": []}, "labels", id="labels-empty"),
        pytest.param({"labels": [1, 2]}, "labels", id="labels-not-strings"),
        pytest.param({"labels": "setosa"}, "labels", id="labels-not-list"),
        pytest.param({"feature_names": []}, "feature_names", id="feature-names-empty"),
        pytest.param({"name": "../x"}, "name", id="bad-name"),
        pytest.param({"version": ""}, "version", id="version-empty"),
        pytest.param({"version": 2}, "version", id="version-number"),
        pytest.param({"auto_load": "false"}, "auto_load", id="auto-load-string"),
        pytest.param({"task": "clustering"}, "task", id="bad-task"),
        pytest.param({"n_features": 0}, "n_features", id="n-features-zero"),
        pytest.param({"n_features": 4.0}, "n_features", id="n-features-float"),
        pytest.param({"class_name": "1Bad"}, "class_name", id="bad-class-name"),
    ],
)
def test_invalid_sidecar_names_the_field(trained, metadata, field):
    write_sidecar(trained / "model.pkl", **metadata)
    with pytest.raises(ModelLoadError, match="model.meta.json is invalid") as caught:
        read_sidecar(trained / "model.pkl")
    assert field in caught.value.data["errors"]["metadata"]


def test_sidecar_that_is_a_list(trained):
    (trained / "model.meta.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="is invalid"):
        read_sidecar(trained / "model.pkl")


# --- sha256_of ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 17])
def test_sha256_of_matches_hashlib(tmp_path, size):
    data = bytes(i % 251 for i in range(size))
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()
