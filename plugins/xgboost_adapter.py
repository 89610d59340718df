"""Built-in adapter for XGBoost: native ``.json``/``.ubj`` boosters (no pickle involved)
and, when asked with ``model_type: xgboost``, pickled XGBClassifier/XGBRegressor.

Predictions use ``inplace_predict`` (no DMatrix per call) with ``nthread``
pinned to the configured compute threads: with several workers, XGBoost's
default of one thread per core makes every worker fight for every core.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app import hookimpl
from app.adapters import AdapterSettings, ModelDescription

CLASSIFIER_PREFIXES = ("binary:", "multi:")


class XGBoostModel:
    """A Booster behind the core's LoadedModel contract."""

    def __init__(self, booster: Any, classes: list[Any] | None, model_class: str):
        self.booster = booster
        self.model_class = model_class
        config = json.loads(booster.save_config())
        learner = config["learner"]
        self.objective: str = learner["objective"]["name"]
        self.num_class = int(learner["learner_model_param"].get("num_class", "0") or 0)
        self.is_classifier = self.objective.startswith(CLASSIFIER_PREFIXES)
        # A model trained with early stopping predicts with its best trees only, as XGBoost's own predict does.
        best = booster.attr("best_iteration")
        self._iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
        if self.is_classifier:
            count = self.num_class if self.num_class > 1 else 2
            self.classes = classes if classes is not None else list(range(count))
            if self.objective != "multi:softmax" and self.objective != "binary:hinge":
                self.predict_proba = self._predict_proba

    def _raw(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X, iteration_range=self._iteration_range))

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = self._raw(X)
        if self.objective == "binary:logitraw":
            out = 1.0 / (1.0 + np.exp(-out))
        if out.ndim == 1:  # binary: probability of the positive class
            return np.column_stack([1.0 - out, out])
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.is_classifier:
            return self._raw(X)
        if self.objective in ("multi:softmax", "binary:hinge"):
            index = self._raw(X).astype(int)
        else:
            index = self._predict_proba(X).argmax(axis=1)
        return np.asarray(self.classes, dtype=object)[index]

    def describe(self) -> ModelDescription:
        names = self.booster.feature_names
        return ModelDescription(
            model_class=self.model_class,
            task="classification" if self.is_classifier else "regression",
            n_features=self.booster.num_features(),
            feature_names=list(names) if names else None,
            classes=self.classes if self.is_classifier else None,
            extra={"objective": self.objective, "trees": self.booster.num_boosted_rounds()},
        )


class XGBoostAdapter:
    name = "xgboost"
    file_types = (".json", ".ubj")

    def __init__(self, settings: AdapterSettings):
        self.settings = settings

    def executes_code(self, path: Path) -> bool:
        """Native boosters are data; a pickled XGBClassifier runs code when loaded."""
        return path.suffix.lower() not in self.file_types

    def load(self, path: Path, metadata: Mapping[str, Any]) -> XGBoostModel:
        import xgboost as xgb

        if path.suffix.lower() in self.file_types:
            booster = xgb.Booster()
            booster.load_model(str(path))
            model_class, classes = "xgboost.Booster", None
        else:
            import joblib

            estimator = joblib.load(path)
            if not isinstance(estimator, xgb.XGBModel):
                raise TypeError(f"{path.name} holds a {type(estimator).__name__}, not an XGBoost model")
            booster = estimator.get_booster()
            model_class = f"xgboost.{type(estimator).__name__}"
            found = getattr(estimator, "classes_", None)
            classes = [c.item() if hasattr(c, "item") else c for c in found] if found is not None else None
        booster.set_param({"nthread": self.settings.compute_threads})
        return XGBoostModel(booster, classes, model_class)


@hookimpl
def register_adapters(settings: AdapterSettings) -> list[XGBoostAdapter]:
    if importlib.util.find_spec("xgboost") is None:
        raise ImportError("xgboost is not installed: pip install 'modelserve[cpu]' (or [gpu])")
    return [XGBoostAdapter(settings)]
