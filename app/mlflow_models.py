"""MLflow model directories, read without MLflow: the ``MLmodel`` file names the flavor's data file.

A ``model_path`` naming a directory with an ``MLmodel`` file of the ``sklearn``
or ``xgboost`` flavor is served from the flavor's data file, by the adapter of
that name, as if it had a sidecar: the MLflow signature becomes the model's
signature, and the recorded library versions feed the provenance check. The
data file is resolved inside the model directory like any model file.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from app.errors import ModelLoadError, ModelPathError, NotFound
from app.model_files import relative_to_model_dir, resolve_model_path

MLMODEL = "MLmodel"
#: The flavors served, each with the key naming its data file and its adapter.
FLAVORS = {"sklearn": ("pickled_model", "sklearn"), "xgboost": ("data", "xgboost")}
#: MLflow column types as a signature's types (binary and datetime columns have no counterpart here).
COLUMN_TYPES = {
    "string": "string",
    "double": "number",
    "float": "number",
    "long": "number",
    "integer": "number",
    "boolean": "boolean",
}
#: The library versions a flavor records, by the provenance check's names.
VERSIONS = {"sklearn_version": "scikit-learn", "xgb_version": "xgboost"}


def is_mlflow_dir(path: Path) -> bool:
    return path.is_dir() and (path / MLMODEL).is_file()


def mlflow_model(model_dir: Path, requested: str) -> tuple[str, dict[str, Any]] | None:
    """For a ``requested`` directory holding an ``MLmodel``: its data file (relative to the model directory)
    and the metadata the ``MLmodel`` stands for; None when ``requested`` is no such directory."""
    try:
        mlmodel = resolve_model_path(model_dir, str(PurePosixPath(requested.rstrip("/")) / MLMODEL))
    except (NotFound, ModelPathError):
        return None
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{requested}/{MLMODEL} is not readable YAML: {exc}") from None
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    flavor = next((name for name in FLAVORS if isinstance(flavors, dict) and name in flavors), None)
    if flavor is None:
        found = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise ModelLoadError(
            f"{requested}/{MLMODEL} has no flavor this server serves (it serves {', '.join(FLAVORS)}; found {found})."
        )
    details = flavors[flavor]
    key, adapter = FLAVORS[flavor]
    data = details.get(key) if isinstance(details, dict) else None
    if not isinstance(data, str):
        raise ModelLoadError(f"{requested}/{MLMODEL}: the {flavor} flavor names no data file ({key}).")
    # Resolved as any model_path is: a data file that leads out of the model directory is refused.
    data_file = resolve_model_path(model_dir, f"{relative_to_model_dir(model_dir, mlmodel.parent)}/{data}")
    metadata: dict[str, Any] = {
        "name": mlmodel.parent.name,
        "model_type": adapter,
        "training": _versions(spec, details),
        "mlflow": {
            "flavor": flavor,
            "directory": relative_to_model_dir(model_dir, mlmodel.parent),
            "mlflow_version": spec.get("mlflow_version"),
            "model_uuid": spec.get("model_uuid"),
            "serialization_format": details.get("serialization_format") or details.get("model_format"),
        },
    }
    signature = _signature(spec.get("signature"), requested)
    if signature:
        metadata["signature"] = signature
    return relative_to_model_dir(model_dir, data_file), metadata


def _versions(spec: dict[str, Any], details: dict[str, Any]) -> dict[str, str]:
    found = {}
    python = spec.get("flavors", {}).get("python_function", {}).get("python_version")
    if python:
        found["python"] = str(python)
    for key, library in VERSIONS.items():
        if details.get(key):
            found[library] = str(details[key])
    return found


def _signature(signature: Any, requested: str) -> list[dict[str, Any]] | None:
    """The MLflow signature's input columns as a sidecar signature; None for a tensor signature (no names)."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError):
        raise ModelLoadError(f"{requested}/{MLMODEL}: its signature's inputs are not JSON.") from None
    if not all(isinstance(c, dict) and c.get("name") for c in inputs):
        return None  # a tensor spec: the model's own description serves
    columns = []
    for column in inputs:
        kind = COLUMN_TYPES.get(column.get("type"))
        if kind is None:
            raise ModelLoadError(
                f"{requested}/{MLMODEL}: column {column['name']} is of type {column.get('type')}, which this "
                f"server does not take (it takes {', '.join(sorted(COLUMN_TYPES))})."
            )
        # MLflow marks the columns that may be missing as not required: inferred from the training data's NaN.
        columns.append({"name": str(column["name"]), "type": kind, "nullable": not column.get("required", True)})
    return columns
