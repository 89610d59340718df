"""Start-up: register the loadable files of the model directory (``models.auto_load``).

Each worker scans the directory as it warms up. A file becomes a model (or a
new version of one) only after it loaded in this worker, so a broken file is
never registered; when several workers register the same file the first one
wins, and a name unloaded through the API is not brought back.
"""

from __future__ import annotations

import logging

from app import desired_state as ds
from app.desired_state import DesiredState
from app.errors import ApiError
from app.mlflow_models import is_mlflow_dir
from app.model_files import is_sidecar
from app.registry.audit import AuditTrail
from app.registry.loading import ModelLoader
from app.registry.served import ServedModel
from app.state_store import StateStore

log = logging.getLogger(__name__)


def register_directory(
    loader: ModelLoader, store: StateStore, audit: AuditTrail, current: DesiredState
) -> dict[tuple[str, str], ServedModel]:
    """Register the directory's loadable files; a file that fails to load is never registered.

    ``current`` is the state just read (trusted files, earlier registrations).
    Returns the models loaded on the way, by (name, sha256), so that the
    warm-up serves them without loading them a second time.
    """
    prepared: dict[tuple[str, str], ServedModel] = {}
    model_dir = loader.model_dir
    if not model_dir.is_dir():
        log.warning("model directory %s does not exist; no model auto-loaded", model_dir)
        return prepared
    for path in sorted(model_dir.iterdir()):
        if path.name.startswith((".", "_")) or is_sidecar(path):
            continue
        if not is_mlflow_dir(path) and (not path.is_file() or path.suffix.lower() not in loader.plugins.by_suffix):
            continue
        try:
            record = loader.record_for(path.name, None, origin="auto_load", name=None)
            if record.metadata.get("auto_load") is False:
                continue
            known = current.models.get(record.name)
            if known and (known.current_record.file, known.current_record.sha256) == (record.file, record.sha256):
                continue  # registered before, unchanged
            served = loader.load(record, current.trusted)
        except ApiError as exc:
            log.error("not auto-loading %s: %s", path.name, exc.description)
            continue
        added = store.transact(lambda state, r=record: ds.adopt_file(state, r))
        if added is not None and added.registered_at != record.registered_at:
            continue  # another worker registered the same file first
        if added is None:
            log.warning(
                "not auto-loading %s: the name %s belongs to another file or was unloaded through the API",
                path.name,
                record.name,
            )
            continue
        served.record = added
        prepared[(added.name, added.sha256)] = served
        audit.record(
            "auto_load",
            "load",
            added.name,
            "success",
            {"version": added.version, "file": added.file, "sha256": added.sha256},
        )
    return prepared
