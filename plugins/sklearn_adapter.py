"""Built-in adapter for scikit-learn models: joblib/pickle files and the safe skops format.

Uses only the public plugin contract, exactly as a third-party plugin would.
scikit-learn is imported when the first model loads, not at start-up.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app import hookimpl
from app.adapters import AdapterSettings, ModelDescription

#: sklearn warns on every call when a model fitted with feature names gets a
#: plain array; the core has already put the features in the model's order.
_FEATURE_NAME_WARNING = "X does not have valid feature names"


def _qualified_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}" if cls.__module__ else cls.__qualname__


class SklearnModel:
    """A fitted estimator (or pipeline) behind the core's LoadedModel contract."""

    def __init__(self, estimator: Any):
        self.estimator = estimator
        self._named = hasattr(estimator, "feature_names_in_")
        if getattr(estimator, "_estimator_type", None) == "classifier" or hasattr(estimator, "classes_"):
            proba = getattr(estimator, "predict_proba", None)
            if proba is not None:
                self.predict_proba = self._quiet(proba)
        self._predict = self._quiet(estimator.predict)

    def _quiet(self, method: Any) -> Any:
        if not self._named:
            return method

        def call(X: np.ndarray) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_FEATURE_NAME_WARNING, category=UserWarning)
                return method(X)

        return call

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict(X)

    def describe(self) -> ModelDescription:
        est = self.estimator
        classes = getattr(est, "classes_", None)
        names = getattr(est, "feature_names_in_", None)
        return ModelDescription(
            model_class=_qualified_name(est),
            task="classification" if classes is not None else "regression",
            n_features=getattr(est, "n_features_in_", None),
            feature_names=[str(n) for n in names] if names is not None else None,
            classes=list(classes) if classes is not None else None,
        )


def _limit_jobs(estimator: Any, threads: int) -> None:
    """Pin every ``n_jobs`` in the estimator (and its steps) to the configured thread count."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return
    jobs = {key: threads for key in get_params(deep=True) if key == "n_jobs" or key.endswith("__n_jobs")}
    if jobs:
        estimator.set_params(**jobs)


class SklearnAdapter:
    name = "sklearn"
    file_types = (".joblib", ".pkl", ".pickle", ".skops")

    def __init__(self, settings: AdapterSettings):
        self.settings = settings

    def executes_code(self, path: Path) -> bool:
        """joblib and pickle files run code when loaded; skops files do not."""
        return path.suffix.lower() != ".skops"

    def load(self, path: Path, metadata: Mapping[str, Any]) -> SklearnModel:
        if path.suffix.lower() == ".skops":
            estimator = self._load_skops(path, metadata)
        else:
            import joblib

            estimator = joblib.load(path)
        if not callable(getattr(estimator, "predict", None)):
            raise TypeError(f"{path.name} holds a {type(estimator).__name__}, which has no predict method")
        _limit_jobs(estimator, self.settings.compute_threads)
        return SklearnModel(estimator)

    @staticmethod
    def _load_skops(path: Path, metadata: Mapping[str, Any]) -> Any:
        import skops.io as sio

        untrusted = sio.get_untrusted_types(file=path)
        if untrusted:
            raise TypeError(
                f"{path.name} contains types skops does not trust by default ({', '.join(untrusted)}); "
                "refusing to load it"
            )
        return sio.load(path)


@hookimpl
def register_adapters(settings: AdapterSettings) -> list[SklearnAdapter]:
    return [SklearnAdapter(settings)]
