"""Built-in adapter for custom models: a Python class in a ``.py`` file in the model directory.

Like MLServer's custom runtimes. The file defines one class (or names it in
the sidecar's ``class_name``) with ``load()``, ``predict(X)`` and optionally
``predict_proba(X)``. Before ``load()`` is called the instance gets
``model_path`` (the ``.py`` file), ``model_dir`` and ``metadata``, so it can
find its own artefacts next to it.

The class may declare ``classes_`` (classifiers), ``feature_names`` and
``n_features``; the sidecar's ``task``, ``labels``, ``feature_names`` and
``n_features`` fill in what it does not. Importing the file runs its code,
which is why only files inside the model directory are ever loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app import hookimpl
from app.adapters import ModelDescription, ModelSharing


def _model_class(module: Any, wanted: str | None) -> type:
    if wanted:
        cls = getattr(module, wanted, None)
        if not inspect.isclass(cls):
            raise TypeError(f"class_name {wanted!r} is not a class in {module.__file__}")
        return cls
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and callable(getattr(obj, "predict", None))
        and callable(getattr(obj, "load", None))
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise TypeError(
            f"expected exactly one class with load() and predict() in {Path(module.__file__).name} "
            f"(found: {names}); name it with class_name in the metadata file"
        )
    return found[0]


class CustomModel:
    """The user's object behind the core's LoadedModel contract."""

    def __init__(self, obj: Any, metadata: Mapping[str, Any], source_stem: str):
        self.obj = obj
        self.metadata = metadata
        self.source_stem = source_stem
        if callable(getattr(obj, "predict_proba", None)):
            self.predict_proba = lambda X: np.asarray(obj.predict_proba(X), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.obj.predict(X))

    def sharing(self) -> ModelSharing:
        return ModelSharing.private("a custom model is Python objects in each worker's own memory")

    def describe(self) -> ModelDescription:
        obj, meta = self.obj, self.metadata
        classes = getattr(obj, "classes_", None)
        labels = meta.get("labels")
        if classes is None and labels:
            classes = list(range(len(labels)))
        task = meta.get("task") or (
            "classification" if classes is not None or hasattr(self, "predict_proba") else "regression"
        )
        names = meta.get("feature_names") or getattr(obj, "feature_names", None)
        n_features = getattr(obj, "n_features", None) or meta.get("n_features") or (len(names) if names else None)
        if task == "classification" and classes is None:
            raise TypeError("a custom classifier needs classes_ on the class or labels in the metadata file")
        return ModelDescription(
            model_class=f"{self.source_stem}.{type(obj).__qualname__}",
            task=task,
            n_features=n_features,
            feature_names=list(names) if names else None,
            classes=list(classes) if classes is not None else None,
        )


class CustomAdapter:
    name = "custom"
    file_types = (".py",)

    def load(self, path: Path, metadata: Mapping[str, Any]) -> CustomModel:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        module_name = f"modelserve_custom_models.{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            obj = _model_class(module, metadata.get("class_name"))()
            obj.model_path, obj.model_dir, obj.metadata = path, path.parent, dict(metadata)
            if obj.load() is False:
                raise RuntimeError(f"{type(obj).__name__}.load() returned False")
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return CustomModel(obj, metadata, path.stem)


@hookimpl
def register_adapters() -> list[CustomAdapter]:
    return [CustomAdapter()]
