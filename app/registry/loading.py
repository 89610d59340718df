"""From a file to a servable model: which file and adapter, trust, provenance, the adapter's load, a trial prediction.

A change is committed only after this worker loaded the model and a trial
prediction passed, so a broken file never replaces a working version. Nothing
here touches the cache or the shared state: the registry decides what to do
with the :class:`~app.registry.served.ServedModel` it gets back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Container
from pathlib import Path

from app import provenance
from app.adapters import ModelAdapter, ModelDescription, ModelSharing, SharedMemoryModel
from app.desired_state import ModelRecord, utc_now
from app.errors import ApiError, Conflict, ModelLoadError, ValidationFailed
from app.memory import estimate_bytes
from app.mlflow_models import mlflow_model
from app.model_files import read_sidecar, relative_to_model_dir, resolve_model_path, sha256_of
from app.model_input import probe_signature, run_once, trial_input
from app.plugin_manager import PluginSet
from app.registry.served import ServedModel
from app.registry.trust import TrustPolicy
from app.validation import NAME_MESSAGE, is_valid_name

log = logging.getLogger(__name__)


class ModelLoader:
    """Turns files of the model directory into records and records into loaded, checked models."""

    def __init__(self, plugins: PluginSet, model_dir: Path, trust: TrustPolicy, allow_version_mismatch: bool) -> None:
        self.plugins = plugins
        self.model_dir = model_dir
        self.trust_policy = trust
        self.allow_version_mismatch = allow_version_mismatch

    def record_for(self, requested: str, model_type: str | None, *, origin: str, name: str | None) -> ModelRecord:
        """Describe the file ``requested`` names (its adapter, digest, sidecar metadata) without loading it.

        A directory holding an MLflow ``MLmodel`` names its flavor's data file, described by the ``MLmodel``.
        """
        mlflow = mlflow_model(self.model_dir, requested)
        if mlflow is not None:
            requested = mlflow[0]
        path = resolve_model_path(self.model_dir, requested)
        metadata = mlflow[1] if mlflow is not None else read_sidecar(path)
        digest = sha256_of(path)
        if metadata.get("sha256") and metadata["sha256"] != digest:
            raise ModelLoadError(
                f"{path.name} does not match the sha256 in its metadata file "
                f"(expected {metadata['sha256'][:12]}..., found {digest[:12]}...)."
            )
        adapter = self.choose_adapter(path, model_type or metadata.get("model_type"))
        name = name or metadata.get("name") or path.stem
        if not is_valid_name(name):  # a file name, where neither a request nor a sidecar named the model
            raise ValidationFailed(f"'{name}' (from the file name {path.name}) is no model name. {NAME_MESSAGE}")
        return ModelRecord(
            name=name,
            file=relative_to_model_dir(self.model_dir, path),
            model_type=adapter.name,
            sha256=digest,
            size_bytes=path.stat().st_size,
            metadata=metadata,
            origin=origin,
            registered_at=utc_now(),
        )

    def choose_adapter(self, path: Path, model_type: str | None) -> ModelAdapter:
        """The adapter named ``model_type``, else the one that handles the file's suffix."""
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

    def reload(self, record: ModelRecord, approved: Container[str]) -> ServedModel:
        """Load a registered version again (another worker's load, an eviction), refusing a changed file."""
        path = resolve_model_path(self.model_dir, record.file)
        if sha256_of(path) != record.sha256:
            raise Conflict(
                f"The file of model '{record.name}' version {record.version} ({record.file}) changed on "
                "disk since it was loaded; load it again to serve the new file."
            )
        return self.load(record, approved)

    def load(self, record: ModelRecord, approved: Container[str]) -> ServedModel:
        """Load ``record``'s file with its adapter and prove it can predict.

        ``approved`` holds the sha256 digests admins trusted through the API.
        """
        adapter = self.plugins.adapters.get(record.model_type)
        if adapter is None:
            raise ModelLoadError(f"The adapter '{record.model_type}' for model '{record.name}' is not installed.")
        path = resolve_model_path(self.model_dir, record.file)
        self.trust_policy.check(adapter, path, record, approved)
        mismatch = provenance.mismatches(record.metadata.get("training"))
        if mismatch and not self.allow_version_mismatch:
            raise ModelLoadError(
                f"{record.file} was trained with {provenance.describe(mismatch)}. Retrain it with this server's "
                "versions, or set models.allow_version_mismatch: true to serve it anyway."
            )
        started = time.perf_counter()
        try:
            model = adapter.load(path, {**record.metadata, "sha256": record.sha256})
            description = model.describe()
            sharing = _sharing(adapter, model)
        except ApiError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"The {adapter.name} adapter could not load {record.file}: {type(exc).__name__}: {exc}"
            ) from exc
        labels = record.metadata.get("labels")
        check_description(record, description, labels)
        served = ServedModel(
            record=record,
            model=model,
            description=description,
            loaded_at=utc_now(),
            labels=labels,
            predict_proba=getattr(model, "predict_proba", None) if description.task == "classification" else None,
            memory_bytes=_memory_bytes(model, sharing, record.size_bytes),
            version_mismatch=mismatch,
            sharing=sharing,
        )
        trial_prediction(served)
        served.load_seconds = time.perf_counter() - started
        if mismatch:
            log.warning("serving %s despite a version mismatch: %s", record.file, provenance.describe(mismatch))
        return served


def _sharing(adapter: ModelAdapter, model: object) -> ModelSharing:
    """What the model says of its sharing; a model that says nothing is private to each worker."""
    if isinstance(model, SharedMemoryModel):
        sharing = model.sharing()
        if isinstance(sharing, ModelSharing):
            return sharing
    return ModelSharing.private(f"the {adapter.name} adapter does not say whether its models can be shared")


def _memory_bytes(model: object, sharing: ModelSharing, floor: int) -> int:
    """A private model's estimated size; a shared one's mapped files (never pickled: that would copy them)."""
    if sharing.mode == "mapped_file":
        return sum(path.stat().st_size for path in sharing.files if path.exists())
    return estimate_bytes(model, floor=floor)


def check_description(record: ModelRecord, description: ModelDescription, labels: list[str] | None) -> None:
    """Refuse metadata that contradicts the model: feature-name or label counts, labels on a regressor."""
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


def trial_prediction(served: ServedModel) -> None:
    """Predict a row the model was trained on, so a model that cannot serve fails at load, not at the first
    user; then probe what it accepts (nulls, unknown categories) into its signature."""
    try:
        served.signature = probe_signature(served)
        X = trial_input(served)
        if X is not None:
            run_once(served, X)
    except Exception as exc:
        raise ModelLoadError(
            f"{served.record.file} loaded but a trial prediction failed: {type(exc).__name__}: {exc}"
        ) from exc
