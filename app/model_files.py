"""Model files on disk: where a requested path may point, sidecar metadata, integrity.

Loading a pickle runs code, so the first rule of model loading is *which* file:
only regular files that resolve (symlinks followed) inside the configured model
directory are ever opened (:mod:`app.confined_paths`, the rule job files follow
too). Everything here runs before an adapter touches the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.confined_paths import PathNotFound, PathRefused, existing_file, relative_path
from app.errors import ModelLoadError, ModelPathError, NotFound
from app.validation import StrictBoolean, model_name_validator

SIDECAR_SUFFIX = ".meta.json"
MODEL_DIRECTORY = "the model directory"  # how refusals name it


class ColumnSchema(ma.Schema):
    """One column of a sidecar's ``signature``: it overrides what the model says of that column."""

    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=256))
    type = ma.fields.String(validate=validate.OneOf(["number", "string", "boolean"]))
    dtype = ma.fields.String(validate=validate.OneOf(["float64", "object", "category", "bool"]))
    categories = ma.fields.List(ma.fields.Raw(), validate=validate.Length(min=1))
    nullable = StrictBoolean()


class SidecarSchema(ma.Schema):
    """The optional ``<stem>.meta.json`` next to a model file."""

    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(validate=model_name_validator())
    version = ma.fields.String(validate=validate.Length(min=1, max=64))
    description = ma.fields.String(validate=validate.Length(max=2000))
    model_type = ma.fields.String(validate=validate.Length(min=1, max=32))
    labels = ma.fields.List(ma.fields.String(), validate=validate.Length(min=1))
    feature_names = ma.fields.List(ma.fields.String(), validate=validate.Length(min=1))
    sha256 = ma.fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    #: Library versions the model was trained with (written by the demo command).
    training = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    #: For custom ``.py`` models: the class to instantiate, the task, the feature count.
    class_name = ma.fields.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$"))
    task = ma.fields.String(validate=validate.OneOf(["classification", "regression"]))
    n_features = ma.fields.Integer(strict=True, validate=validate.Range(min=1))
    #: The model's input columns in order (see docs/models.md): for a model that does not record them.
    signature = ma.fields.List(ma.fields.Nested(ColumnSchema), validate=validate.Length(min=1))
    #: False keeps the file out of start-up loading; it can still be loaded through the API.
    auto_load = StrictBoolean()
    #: Serve a tree ensemble through Treelite, natively compiled or GTIL (overrides runtime.compiled_trees).
    compiled_trees = StrictBoolean()
    #: False: a tabular scikit-learn Pipeline is served through scikit-learn, not NumPy (runtime.tabular_kernel).
    tabular_kernel = StrictBoolean()
    #: False: each worker keeps its own copy, even where a shared layout exists (runtime.share_models).
    share_memory = StrictBoolean()


def sidecar_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.stem + SIDECAR_SUFFIX)


def is_sidecar(path: Path) -> bool:
    return path.name.endswith(SIDECAR_SUFFIX)


def read_sidecar(model_file: Path) -> dict[str, Any]:
    """Return the validated sidecar metadata, ``{}`` when there is none."""
    path = sidecar_path(model_file)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return SidecarSchema().load(raw)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"metadata file {path.name} is not readable JSON: {exc}") from None
    except ma.ValidationError as exc:
        raise ModelLoadError(f"metadata file {path.name} is invalid", errors={"metadata": exc.messages}) from None


def resolve_model_path(model_dir: Path, requested: str) -> Path:
    """Return the real path of ``requested`` if it is a regular file inside ``model_dir``.

    The rule is :mod:`app.confined_paths`'s: ``requested`` may be relative to
    the model directory (``iris.joblib``) or, as in the spec's examples,
    relative to the working directory and pointing into it
    (``models/trained/iris.joblib``). Absolute paths, ``..`` and symbolic links
    that lead out are refused (400) before anything is read; a missing file is 404.
    """
    try:
        return existing_file(model_dir, relative_path(requested, MODEL_DIRECTORY), MODEL_DIRECTORY)
    except PathRefused as exc:
        raise ModelPathError(f"model_path {exc}") from None
    except PathNotFound:
        raise NotFound(f"No model file '{requested}' in the model directory.") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relative_to_model_dir(model_dir: Path, path: Path) -> str:
    return path.resolve().relative_to(model_dir.resolve()).as_posix()
