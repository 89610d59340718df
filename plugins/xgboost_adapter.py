"""Built-in adapter for XGBoost: native ``.json``/``.ubj`` boosters (no pickle involved)
and, when asked with ``model_type: xgboost``, pickled XGBClassifier/XGBRegressor.

Predictions use ``inplace_predict``'s C function (no DMatrix per call) with
``nthread`` pinned to the configured compute threads: with several workers,
XGBoost's default of one thread per core makes every worker fight for every
core. The C function is called directly (``XGBoosterPredictFromDense``, the
one ``inplace_predict`` calls) because the Python wrapper costs more than the
trees for a single row; the direct call is used only if it answers exactly as
``inplace_predict`` on probe rows when the model loads. With
``"compiled_trees": true`` Treelite predicts instead, through a compiled native
library or else its GTIL (see :mod:`app.compiled_trees`), if it agrees with
XGBoost to 1e-6.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app import hookimpl
from app.adapters import AdapterSettings, Column, ModelDescription, ModelSharing

CLASSIFIER_PREFIXES = ("binary:", "multi:")
log = logging.getLogger("app.adapters.xgboost")


class _DirectPredict:
    """``Booster.inplace_predict(X)`` for a C-contiguous float64 matrix, minus the wrapper's per-call work."""

    def __init__(self, booster: Any, iteration_range: tuple[int, int]):
        from xgboost import core

        self._booster = booster
        self._lib = core._LIB
        self._check = core._check_call
        self._ulong = core.c_bst_ulong
        self._args = core.make_jcargs(
            type=0,
            training=False,
            iteration_begin=int(iteration_range[0]),
            iteration_end=int(iteration_range[1]),
            missing=np.nan,
            strict_shape=False,
            cache_id=0,
        )
        self._no_proxy = ctypes.c_void_p()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        rows, columns = X.shape
        interface = b'{"data":[%d,true],"shape":[%d,%d],"strides":null,"typestr":"<f8","version":3}' % (
            X.ctypes.data,
            rows,
            columns,
        )
        shape = ctypes.POINTER(self._ulong)()
        dims = self._ulong()
        preds = ctypes.POINTER(ctypes.c_float)()
        self._check(
            self._lib.XGBoosterPredictFromDense(
                self._booster.handle,
                interface,
                self._args,
                self._no_proxy,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(preds),
            )
        )
        out_shape = tuple(int(shape[i]) for i in range(dims.value))
        # The buffer belongs to the booster (per thread) and is reused by its next prediction: copy it.
        return np.ctypeslib.as_array(preds, shape=out_shape).copy()


def _agrees(ours: np.ndarray, reference: np.ndarray, tolerance: float) -> bool:
    ours = np.asarray(ours, dtype=np.float64).reshape(reference.shape)
    return bool(np.allclose(ours, reference, rtol=0, atol=tolerance))


class XGBoostModel:
    """A Booster behind the core's LoadedModel contract."""

    def __init__(
        self,
        booster: Any,
        classes: list[Any] | None,
        model_class: str,
        compiled: Any = None,
        threads: int = 1,
        cache_dir: Path | None = None,
    ):
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
        self.kernel = "inplace_predict"
        self.columns = _categorical_columns(booster)
        # A model with categorical features takes a DataFrame, which only inplace_predict reads.
        self._fast = self._choose_kernel(compiled, threads, cache_dir) if self.columns is None else self._inplace
        if self.is_classifier:
            count = self.num_class if self.num_class > 1 else 2
            self.classes = classes if classes is not None else list(range(count))
            if self.objective != "multi:softmax" and self.objective != "binary:hinge":
                self.predict_proba = self._predict_proba
                self.predict_with_proba = self._predict_with_proba

    def _inplace(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X, iteration_range=self._iteration_range))

    def _choose_kernel(self, compiled_wanted: bool, threads: int, cache_dir: Path | None) -> Any:
        """The fastest way to the booster's outputs that answers as ``inplace_predict`` on probe rows."""
        from app.compiled_trees import PROBE_BATCHES, TOLERANCE, compile_trees, probe_rows

        rows = probe_rows(self.booster.num_features())
        reference = self._inplace(rows)
        candidates = []
        if compiled_wanted:
            for predictor in compile_trees(self.booster, "xgboost", threads, cache_dir):
                candidates.append((predictor.kernel, predictor.predict, TOLERANCE))
        try:
            candidates.append(("direct", _DirectPredict(self.booster, self._iteration_range), 0.0))
        except Exception as exc:  # another XGBoost layout: the public call
            log.warning("XGBoost's C prediction function is not reachable (%s); using inplace_predict", exc)
        for name, predict, tolerance in candidates:
            try:
                if all(_agrees(predict(rows[b]), reference[b], tolerance) for b in PROBE_BATCHES):
                    self.kernel = name
                    return predict
            except Exception as exc:
                log.warning("XGBoost %s prediction failed on probe rows (%s)", name, exc)
            log.warning("XGBoost %s prediction disagrees with inplace_predict; not using it", name)
        return self._inplace

    def _raw(self, X: np.ndarray) -> np.ndarray:
        return self._fast(X)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = self._raw(X)
        if self.objective == "binary:logitraw":
            out = 1.0 / (1.0 + np.exp(-out))
        if out.ndim == 1:  # binary: probability of the positive class
            return np.column_stack([1.0 - out, out])
        return out

    def _predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What predict and predict_proba give, from one pass over the trees."""
        proba = self._predict_proba(X)
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)], proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.is_classifier:
            return self._raw(X)
        if self.objective in ("multi:softmax", "binary:hinge"):
            index = self._raw(X).astype(int)
        else:
            index = self._predict_proba(X).argmax(axis=1)
        return np.asarray(self.classes, dtype=object)[index]

    def sharing(self) -> ModelSharing:
        return ModelSharing.private(
            "XGBoost keeps its trees in the booster's own memory, which it cannot map from a file: "
            "each worker holds its own copy"
        )

    def describe(self) -> ModelDescription:
        names = self.booster.feature_names
        return ModelDescription(
            model_class=self.model_class,
            task="classification" if self.is_classifier else "regression",
            n_features=self.booster.num_features(),
            feature_names=list(names) if names else None,
            classes=self.classes if self.is_classifier else None,
            extra={"objective": self.objective, "trees": self.booster.num_boosted_rounds(), "kernel": self.kernel},
            columns=self.columns,
        )


def _categorical_columns(booster: Any) -> list[Column] | None:
    """A booster trained with categorical features (``enable_categorical``): its columns, categories included.

    XGBoost (3.1 and later) keeps the training categories in the model and maps a
    DataFrame's categories to them by value; reading them needs pyarrow.
    """
    types = booster.feature_types
    if not types or "c" not in types:
        return None
    known: dict[str, Any] = {}
    try:
        known = {
            name: values.to_pylist()
            for name, values in booster.get_categories(export_to_arrow=True).to_arrow()
            if values is not None
        }
    except Exception as exc:  # an older XGBoost, or no pyarrow: the sidecar's signature can name them
        log.info("XGBoost categories not readable (%s)", exc)
    names = booster.feature_names or [f"f{i}" for i in range(len(types))]
    return [
        Column(name, "string", "category", tuple(known[name]) if name in known else None)
        if kind == "c"
        else Column(name)
        for name, kind in zip(names, types, strict=True)
    ]


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
        compiled = bool(metadata.get("compiled_trees", self.settings.compiled_trees))
        return XGBoostModel(
            booster, classes, model_class, compiled, self.settings.compute_threads, self.settings.compiled_trees_cache
        )


@hookimpl
def register_adapters(settings: AdapterSettings) -> list[XGBoostAdapter]:
    if importlib.util.find_spec("xgboost") is None:
        raise ImportError("xgboost is not installed: pip install 'modelserve[cpu]' (or [gpu])")
    return [XGBoostAdapter(settings)]
