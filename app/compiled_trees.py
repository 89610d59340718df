"""Tree ensembles served through Treelite's GTIL, for adapters that want it (optional).

scikit-learn predicts a forest tree by tree through joblib (about 4.5 ms a row
for 100 trees); Treelite's General Tree Inference Library walks the same trees
in one C++ call (tens of microseconds) and needs no compiler. An adapter asks
:func:`compile_trees` for a predictor when a model's sidecar says
``"compiled_trees": true`` (or ``runtime.compiled_trees`` does); the predictor
is used only if it agrees with the plain model on probe rows (to ``1e-6``), and
the plain model serves otherwise: Treelite missing (``pip install
'modelserve[trees]'``), an ensemble type it cannot import, or any disagreement.

Nothing here runs on import: treelite is imported when a model asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: How far compiled probabilities (or regression outputs) may be from the plain model's.
TOLERANCE = 1e-6


class GtilPredictor:
    """One Treelite model and a reusable GTIL configuration (one thread by default)."""

    def __init__(self, model: Any, threads: int):
        import treelite.gtil as gtil

        self.model = model
        self.num_feature: int = model.num_feature
        try:  # the configuration object is built once instead of on every call
            from treelite.gtil.gtil import GTILConfig, _predict_impl

            config = GTILConfig(nthread=threads, predict_type="default")
            self._predict: Callable[[np.ndarray], np.ndarray] = lambda X: _predict_impl(model, X, config=config)
        except ImportError:  # pragma: no cover - another treelite layout: the public call
            self._predict = lambda X: gtil.predict(model, X, nthread=threads)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs of shape (rows, classes) for classifiers, (rows,) for regressors."""
        out = self._predict(X)
        # GTIL answers (rows, targets, classes): one target here.
        out = out[:, 0, :] if out.ndim == 3 else out
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def probe_rows(n_features: int, count: int = 256, seed: int = 20261127) -> np.ndarray:
    """Deterministic rows spread over several magnitudes, to compare two predictors."""
    rng = np.random.default_rng(seed)
    scales = np.repeat([0.1, 1.0, 10.0, 100.0], count // 4)[:, None]
    rows = rng.normal(size=(count, n_features)) * scales
    return np.vstack([np.zeros((1, n_features)), np.abs(rows[: count // 2]), rows])


def compile_trees(source: Any, frontend: str, threads: int) -> GtilPredictor | None:
    """A GTIL predictor for ``source`` (``frontend``: "sklearn" or "xgboost"), or None when unsupported."""
    try:
        import treelite
    except ImportError:
        log.warning("compiled_trees asked for, but treelite is not installed: serving the plain model")
        return None
    try:
        if frontend == "sklearn":
            model = treelite.sklearn.import_model(source)
        elif frontend == "xgboost":
            model = treelite.frontend.from_xgboost(source)
        else:
            return None
        return GtilPredictor(model, threads)
    except Exception as exc:  # an ensemble Treelite does not know: the plain model serves
        log.warning("compiled_trees: treelite cannot import this %s model (%s): serving the plain model", frontend, exc)
        return None
