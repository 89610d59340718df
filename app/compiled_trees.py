"""Tree ensembles served through Treelite, for adapters that want it (optional).

scikit-learn predicts a forest tree by tree through joblib, slowly for one row.
Treelite serves the same trees two ways: compiled to a native library by
tl2cgen and the system C compiler (the fastest; see :mod:`app.native_trees`),
or walked by its General Tree Inference Library in one C++ call (no compiler
needed). The compiled trees guide has the measured costs. An adapter asks
:func:`compile_trees` for these predictors when a model's sidecar says
``"compiled_trees": true`` (or ``runtime.compiled_trees`` does) and uses the
first that agrees with the plain model on probe rows (to ``1e-6``): the native
library, else GTIL, else the plain model. Each step down is logged with its
reason: tl2cgen or a C compiler missing, a failed compile, Treelite missing
(``pip install 'modelserve[trees]'``), an ensemble type it cannot import, or a
disagreement.

Nothing here runs on import: treelite is imported when a model asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

#: How far compiled probabilities (or regression outputs) may be from the plain model's.
TOLERANCE = 1e-6


class TreePredictor(Protocol):
    """What :func:`compile_trees` returns: a kernel name for ``details.kernel`` and a prediction."""

    kernel: str

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs of shape (rows, classes) for classifiers, (rows,) for regressors and binary models."""
        ...


class GtilPredictor:
    """One Treelite model and a reusable GTIL configuration (one thread by default)."""

    kernel = "treelite-gtil"

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


#: The probe rows' batches a kernel must answer like the model: all at once, then the first
#: eight one by one (kernels may take another path for a single row).
PROBE_BATCHES = (slice(None), *(slice(i, i + 1) for i in range(8)))


def compile_trees(source: Any, frontend: str, threads: int, cache_dir: Path | None = None) -> list[TreePredictor]:
    """Treelite predictors for ``source`` (``frontend``: "sklearn" or "xgboost"), fastest first.

    ``source`` is an ensemble Treelite's frontend imports (the sklearn adapter turns
    a single decision tree into a one-tree forest first). The native library (built
    or reused from ``cache_dir``; none without one), then GTIL; an empty list when
    Treelite cannot serve the model at all.
    """
    try:
        import treelite
    except ImportError:
        log.warning("compiled_trees asked for, but treelite is not installed: serving the plain model")
        return []
    try:
        if frontend == "sklearn":
            model = treelite.sklearn.import_model(source)
        elif frontend == "xgboost":
            model = treelite.frontend.from_xgboost(source)
        else:
            return []
        gtil = GtilPredictor(model, threads)
    except Exception as exc:  # an ensemble Treelite does not know: the plain model serves
        log.warning("compiled_trees: treelite cannot import this %s model (%s): serving the plain model", frontend, exc)
        return []
    native = _native(model, cache_dir)
    return [gtil] if native is None else [native, gtil]


def _native(model: Any, cache_dir: Path | None) -> TreePredictor | None:
    if cache_dir is None:
        log.warning("compiled_trees: no cache directory for compiled libraries: Treelite's GTIL serves")
        return None
    from app.native_trees import NativeUnavailable, native_predictor

    try:
        return native_predictor(model, cache_dir)
    except NativeUnavailable as exc:
        log.warning("compiled_trees: no native library (%s): Treelite's GTIL serves", exc)
    except Exception as exc:  # an unexpected failure must not keep the model from loading
        log.warning("compiled_trees: the native library failed (%r): Treelite's GTIL serves", exc)
    return None
