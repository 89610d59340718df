"""Built-in adapter for scikit-learn models: joblib/pickle files and the safe skops format.

Uses only the public plugin contract, exactly as a third-party plugin would.
scikit-learn is imported when the first model loads, not at start-up.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app import hookimpl
from app.adapters import AdapterSettings, ModelDescription, ModelSharing
from app.fitted_columns import sklearn_columns

#: sklearn warns on every call when a model fitted with feature names gets a
#: plain array; the core has already put the features in the model's order.
_FEATURE_NAME_WARNING = "X does not have valid feature names"
log = logging.getLogger("app.adapters.sklearn")


def _qualified_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}" if cls.__module__ else cls.__qualname__


class SklearnModel:
    """A fitted estimator (or pipeline) behind the core's LoadedModel contract.

    The core has already checked the features (count, finite numbers, order), so
    for the estimator types below (LogisticRegression, forests and trees) the model is
    called without scikit-learn's per-call input validation, which is most of a
    single-row prediction's time. A fast path is used only if it gives exactly the
    estimator's own answers on probe rows when the model loads. A Pipeline fitted
    on a table may be served from the request's typed columns by the tabular
    kernel (``_sklearn_tabular.py``, beside this file), under the same condition.
    """

    def __init__(
        self,
        estimator: Any,
        compiled: Any = None,
        private_because: str = "not asked to share",
        no_tables_because: str | None = "not asked",
    ):
        self.estimator = estimator
        self._private_because = private_because
        self._named = hasattr(estimator, "feature_names_in_")
        self.kernel = "sklearn"
        is_classifier = getattr(estimator, "_estimator_type", None) == "classifier" or hasattr(estimator, "classes_")
        proba = getattr(estimator, "predict_proba", None) if is_classifier else None
        plain_predict = self._quiet(estimator.predict)
        plain_proba = self._quiet(proba) if proba is not None else None
        # The compiled kernels, fastest first: the first one that agrees with the estimator serves.
        fast = next(filter(None, (_verified(k, estimator, plain_predict, plain_proba) for k in compiled or ())), None)
        if fast is not None:
            self.kernel = fast.name
        else:
            internal = _internal_kernel(estimator)
            fast = _verified(internal, estimator, plain_predict, plain_proba)
            if internal is None:  # no internals known: a pipeline's final step's, or scikit-learn's own definition
                fast = _pipeline_kernel(estimator) or _by_definition(estimator)
            if fast is not None:
                self.kernel = fast.name
        if fast is not None:
            self._predict = fast.predict
            if plain_proba is not None:
                self.predict_proba = fast.predict_proba
                self.predict_with_proba = fast.predict_with_proba
        else:
            self._predict = plain_predict
            if plain_proba is not None:
                self.predict_proba = plain_proba
        self._columns = sklearn_columns(estimator)
        self.tabular: dict[str, Any] | None = None  # whether the tabular kernel serves (models fitted on a table)
        if self._columns is not None:
            self.tabular = self._serve_tables(no_tables_because, plain_predict, plain_proba)

    def _serve_tables(self, no_because: str | None, plain_predict: Any, plain_proba: Any) -> dict[str, Any]:
        """Serve :class:`~app.adapters.Table` inputs through the NumPy kernel if it fits and agrees."""
        if no_because is not None:
            return {"serves": False, "reason": no_because}
        from app.plugin_manager import import_beside

        tabular = import_beside(__file__, "_sklearn_tabular")
        proba, both = getattr(self, "predict_proba", None), getattr(self, "predict_with_proba", None)
        fallback = _FramePath(self._predict, proba, both)
        try:
            entries, final = tabular.plan(self.estimator)
            kernel = tabular.TabularKernel(entries, _final_kernel(final, tabular), fallback)
        except tabular.Unsupported as exc:
            return {"serves": False, "reason": f"the kernel does not compute {exc}"}
        tables = tabular.trial_tables(entries, [c.name for c in self._columns], {c.name: c.type for c in self._columns})
        why = tabular.disagreement(kernel, plain_predict, plain_proba, tables)
        if why is not None:
            log.warning("%s: the tabular kernel disagrees with scikit-learn %s; not using it", self.estimator, why)
            return {"serves": False, "reason": f"it disagrees with scikit-learn {why}"}
        kernel.dtypes = tuple(column.dtype for column in tables[0].columns.values())
        self._predict, self.kernel = kernel.predict, kernel.name
        if plain_proba is not None:
            self.predict_proba = kernel.predict_proba
            self.predict_with_proba = kernel.predict_with_proba
        return {"serves": True, "reason": None}

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

    def sharing(self) -> ModelSharing:
        return ModelSharing.private(self._private_because)

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
            extra={"kernel": self.kernel, **({"tabular_kernel": self.tabular} if self.tabular else {})},
            columns=self._columns,
            takes_table=bool(self.tabular and self.tabular["serves"]),
        )


class _FramePath:
    """The model's answers for a DataFrame, as they were before the tabular kernel: what it falls back on."""

    def __init__(self, predict: Any, proba: Any, both: Any):
        self.predict = predict
        self._proba = proba
        self._both = both

    def predict_with_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        if self._both is not None:
            return self._both(X)
        return self.predict(X), self._proba(X)


class _Kernel:
    """Predictions computed from one probability (or decision) call: ``predict`` follows from it."""

    def __init__(self, name: str, proba: Any, classes: np.ndarray | None, predict: Any = None):
        self.name = name
        self._proba = proba
        self.classes = classes
        self._predict = predict

    def predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._predict is not None:
            return self._predict(X)
        proba = self._proba(X)
        return self.classes.take(proba.argmax(axis=1)), proba

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.predict_with_proba(X)[1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes is None:  # a regressor
            return self._proba(X)
        return self.predict_with_proba(X)[0]


def _internal_kernel(estimator: Any) -> _Kernel | None:
    """scikit-learn's own arithmetic without its input checks, for estimator types whose internals we know."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    kind = type(estimator)
    if kind is LogisticRegression and isinstance(getattr(estimator, "coef_", None), np.ndarray):
        return _logistic_kernel(estimator)
    if kind in (RandomForestClassifier, ExtraTreesClassifier) and getattr(estimator, "n_outputs_", 0) == 1:
        return _trees_kernel("forest-internals", [e.tree_ for e in estimator.estimators_], estimator)
    if kind in (DecisionTreeClassifier, ExtraTreeClassifier) and getattr(estimator, "n_outputs_", 0) == 1:
        return _trees_kernel("tree-internals", [estimator.tree_], estimator)
    return None


def _pipeline_kernel(estimator: Any) -> _Kernel | None:
    """A Pipeline whose final classifier has a verified kernel: its transforms, then that kernel.

    ``Pipeline.predict`` and ``predict_proba`` are, by definition, the final step's on the
    transformed rows; the kernel answers for it as it does (checked on its own probe rows),
    and gives both from one pass through the transforms instead of two.
    """
    steps = getattr(estimator, "steps", None)
    if not steps or len(steps) < 2 or not hasattr(estimator, "classes_"):
        return None
    kernel = _step_kernel(steps[-1][1])
    if kernel is None or kernel.classes is None:
        return None
    transform = estimator[:-1].transform

    def both(X: Any) -> tuple[np.ndarray, np.ndarray]:
        return kernel.predict_with_proba(transform(X))

    return _Kernel(f"pipeline+{kernel.name}", None, kernel.classes, predict=both)


def _step_kernel(final: Any) -> _Kernel | None:
    """A pipeline's final step's verified kernel (for the numbers its transforms give), if it has one."""
    proba = getattr(final, "predict_proba", None)
    return _verified(_internal_kernel(final), final, final.predict, proba) or _by_definition(final)


def _final_kernel(final: Any, tabular: Any) -> Any:
    """The final step of a tabular pipeline as the tabular kernel computes it (LogisticRegression: its own
    kernel; the other linear models: their arithmetic), or raise ``tabular.Unsupported``."""
    from sklearn.linear_model import LogisticRegression

    if type(final) is not LogisticRegression:
        return tabular.linear_final(final)
    kernel = _step_kernel(final)
    if kernel is None:
        raise tabular.Unsupported("this LogisticRegression (no verified kernel)")
    return kernel


def _by_definition(estimator: Any) -> _Kernel | None:
    """Both answers from one call, for classifiers whose ``predict`` scikit-learn defines from that call:
    trees, forests and HistGradientBoosting predict the class of highest probability; a multinomial
    LogisticRegression the class of highest decision score, its probabilities being their softmax."""
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    kind, classes = type(estimator), getattr(estimator, "classes_", None)
    if classes is None:
        return None
    if kind is LogisticRegression and classes.size > 2:
        from sklearn.utils.extmath import softmax

        def both(X: Any) -> tuple[np.ndarray, np.ndarray]:
            scores = estimator.decision_function(X)
            labels = classes.take(scores.argmax(axis=1))
            return labels, softmax(scores, copy=False)

        return _Kernel("decision-softmax", None, classes, predict=both)
    trees = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)
    if kind is HistGradientBoostingClassifier or (kind in trees and getattr(estimator, "n_outputs_", 0) == 1):
        return _Kernel("argmax-proba", estimator.predict_proba, classes)
    return None


def _logistic_kernel(estimator: Any) -> _Kernel:
    """LogisticRegression's decision_function, predict and predict_proba, from one matrix product."""
    from scipy.special import expit

    coef_t = estimator.coef_.T  # as sklearn multiplies: another layout can differ in the last bit
    coef = np.ascontiguousarray(estimator.coef_)
    intercept = estimator.intercept_
    intercept_column = intercept.reshape(-1, 1)
    classes = estimator.classes_
    binary = classes.size <= 2

    def both(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if binary:
            scores = (X @ coef_t + intercept).reshape(-1)
            positive = expit(scores)
            return classes.take((scores > 0).astype(np.intp)), np.vstack([1 - positive, positive]).T
        if len(X) == 1:  # one row: the softmax of a few numbers in Python, not six NumPy calls
            return _one_row((X @ coef_t + intercept)[0], classes)
        # Scores as the transpose of a (classes, rows) product: column-major, so the per-row max and
        # sum of the softmax run down whole columns, not a few values at a time along each row.
        scores = (coef @ X.T + intercept_column).T
        return classes.take(scores.argmax(axis=1)), _softmax(scores)

    return _Kernel("logistic-internals", None, classes, predict=both)


def _one_row(scores: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_softmax` of one row of scores, on a 1-D array: the same arithmetic in four calls, not ten."""
    best = int(scores.argmax())
    scores -= scores[best]
    np.exp(scores, out=scores)
    scores /= scores.sum()
    return classes[best : best + 1], scores.reshape(1, -1)


def _softmax(X: np.ndarray) -> np.ndarray:
    """``sklearn.utils.extmath.softmax(X, copy=False)``'s arithmetic for NumPy arrays, in place."""
    X -= X.max(axis=1).reshape((-1, 1))
    np.exp(X, out=X)
    X /= X.sum(axis=1).reshape((-1, 1))
    return X


def _trees_kernel(name: str, trees: list[Any], estimator: Any) -> _Kernel:
    """A forest's predict_proba as scikit-learn computes it (float32 input, trees summed in order)."""
    n_classes = int(estimator.n_classes_)
    count = len(trees)

    def proba(X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        out = np.zeros((X32.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            out += tree.predict(X32)[:, :n_classes]
        if count > 1:
            out /= count
        return out

    return _Kernel(name, proba, estimator.classes_)


def _compiled_kernel(predictor: Any, estimator: Any) -> _Kernel:
    classes = getattr(estimator, "classes_", None)
    return _Kernel(predictor.kernel, predictor.predict, classes)


def _verified(kernel: _Kernel | None, estimator: Any, predict: Any, proba: Any) -> _Kernel | None:
    """``kernel`` if it answers as the estimator does on probe rows (the compiled one to 1e-6), else None."""
    if kernel is None:
        return None
    n_features = getattr(estimator, "n_features_in_", None)
    if not n_features:
        return None
    from app.compiled_trees import PROBE_BATCHES, probe_rows

    rows = probe_rows(int(n_features))
    exact = not kernel.name.startswith("treelite-")
    try:
        same = all(_agrees(kernel, predict, proba, rows[batch], exact) for batch in PROBE_BATCHES)
    except Exception:  # the kernel does not fit this estimator after all
        same = False
    if not same:
        log.warning("%s: the %s fast path disagrees with scikit-learn; not using it", estimator, kernel.name)
        return None
    return kernel


def _agrees(kernel: _Kernel, predict: Any, proba: Any, rows: np.ndarray, exact: bool) -> bool:
    """Whether the kernel answers ``rows`` as the estimator does: bit for bit if ``exact``, else to TOLERANCE."""
    from app.compiled_trees import TOLERANCE

    if kernel.classes is None:
        return bool(np.allclose(kernel.predict(rows), predict(rows), rtol=0, atol=0 if exact else TOLERANCE))
    labels, probabilities = kernel.predict_with_proba(rows)
    if not np.array_equal(labels, predict(rows)):
        return False
    if proba is None:
        return True
    reference = proba(rows)
    if exact:
        return bool(np.array_equal(probabilities, reference))
    return bool(np.allclose(probabilities, reference, rtol=0, atol=TOLERANCE))


def _as_forest(estimator: Any) -> Any:
    """A scikit-learn decision tree as the one-tree forest Treelite can import (same answers); others as is."""
    from sklearn.base import is_classifier
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import BaseDecisionTree

    if not isinstance(estimator, BaseDecisionTree):
        return estimator
    forest = (RandomForestClassifier if is_classifier(estimator) else RandomForestRegressor)(n_estimators=1)
    forest.estimators_ = [estimator]
    for name in ("n_outputs_", "n_classes_", "classes_", "n_features_in_"):
        if hasattr(estimator, name):
            setattr(forest, name, getattr(estimator, name))
    return forest


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

    def load(self, path: Path, metadata: Mapping[str, Any]) -> Any:
        estimator, private_because = None, "runtime.share_models is off"
        compiled_wanted = metadata.get("compiled_trees", self.settings.compiled_trees)
        if compiled_wanted:
            private_because = "compiled_trees serves it: Treelite needs the estimator in each worker"
        elif metadata.get("share_memory") is False:
            private_because = "its metadata file says share_memory: false"
        elif self.settings.shared_models_dir is not None:
            from app.shared_trees import SharingUnavailable

            try:
                shared, estimator, private_because = self._load_shared(path, metadata)
                if shared is not None:
                    return shared
            except SharingUnavailable as exc:
                private_because = str(exc)
        if estimator is None:
            estimator = self._load_estimator(path, metadata)
        compiled = []
        if compiled_wanted:
            from app.compiled_trees import compile_trees

            settings = self.settings
            forest = _as_forest(estimator)
            predictors = compile_trees(forest, "sklearn", settings.compute_threads, settings.compiled_trees_cache)
            compiled = [_compiled_kernel(predictor, estimator) for predictor in predictors]
        no_tables_because = None
        if not self.settings.tabular_kernel and "tabular_kernel" not in metadata:
            no_tables_because = "runtime.tabular_kernel is off"
        elif not metadata.get("tabular_kernel", True):
            no_tables_because = "its metadata file says tabular_kernel: false"
        return SklearnModel(estimator, compiled, private_because, no_tables_because)

    def _load_estimator(self, path: Path, metadata: Mapping[str, Any]) -> Any:
        if path.suffix.lower() == ".skops":
            estimator = self._load_skops(path, metadata)
        else:
            import joblib

            estimator = joblib.load(path)
        if not callable(getattr(estimator, "predict", None)):
            raise TypeError(f"{path.name} holds a {type(estimator).__name__}, which has no predict method")
        _limit_jobs(estimator, self.settings.compute_threads)
        return estimator

    def _load_shared(self, path: Path, metadata: Mapping[str, Any]) -> tuple[Any, Any, str]:
        """The forest's shared layout, written first from the estimator if no worker has it yet.

        Returns (the model, None, "") or, for an estimator with no shared layout,
        (None, the estimator, why). A worker that finds the layout never unpickles
        the file; the one that writes it drops the estimator afterwards. Workers
        wait for each other only over a file that may hold a forest.
        """
        from importlib.metadata import version

        from app.model_files import sha256_of
        from app.provenance import running_versions
        from app.shared_forests import SharedForestModel
        from app.shared_trees import LayoutStore, SharingUnavailable, layout_key, release_freed_memory

        store = LayoutStore(self.settings.shared_models_dir)
        # The installed version, as the master read it before fork (version() raises if there is none).
        sklearn_version = running_versions().get("scikit-learn") or version("scikit-learn")
        key = layout_key(metadata.get("sha256") or sha256_of(path), f"scikit-learn {sklearn_version}")
        try:
            mapped = store.find(key)
        except SharingUnavailable as exc:  # damaged: written again below
            log.warning("shared layout of %s refused (%s); writing it again", path.name, exc)
            mapped = None
        estimator = None
        if mapped is None and not _may_hold_a_forest(path):
            estimator = self._load_estimator(path, metadata)
            reason = _why_not_shared(estimator)
            if reason:
                return None, estimator, reason
        if mapped is None:
            with store.writing(key):
                try:
                    mapped = store.find(key)
                except SharingUnavailable:
                    mapped = None
                if mapped is None:
                    store.discard(key)  # a damaged layout, or what a writer killed halfway left
                    if estimator is None:
                        estimator = self._load_estimator(path, metadata)
                    reason = _why_not_shared(estimator)
                    if reason:
                        return None, estimator, reason
                    store.write(key, *_forest_layout(estimator))
                    estimator = None
                    release_freed_memory()
                    mapped = store.find(key)
        if mapped is None or not mapped.agrees_with_estimator():
            raise SharingUnavailable("the shared-forest kernel does not repeat the estimator's answers")
        return SharedForestModel(mapped), None, ""

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


#: Ensembles whose trees the shared layout holds (single output, no other state used to predict).
_SHARED_FORESTS = ("RandomForestClassifier", "ExtraTreesClassifier", "RandomForestRegressor", "ExtraTreesRegressor")


def _may_hold_a_forest(path: Path) -> bool:
    """Whether a file may hold a scikit-learn forest, from its first bytes (a compressed file: maybe)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    return not head.startswith(b"\x80") or b"sklearn.ensemble._forest" in head


def _why_not_shared(estimator: Any) -> str:
    """Why the estimator has no shared layout ("" when it has one)."""
    if type(estimator).__name__ not in _SHARED_FORESTS or type(estimator).__module__.split(".")[0] != "sklearn":
        return f"only scikit-learn forests have a shared layout, and this is a {_qualified_name(estimator)}"
    if getattr(estimator, "n_outputs_", 1) != 1:
        return "a multi-output forest has no shared layout"
    classes = getattr(estimator, "classes_", None)
    if classes is not None and classes.dtype.kind not in "iub" and not all(isinstance(c, str) for c in classes):
        return "only classes that are integers or strings are kept in a shared layout"
    return ""


def _forest_layout(estimator: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A forest's nodes and leaf values as :mod:`app.shared_trees` lays them out (:func:`_why_not_shared` is "")."""
    from app.compiled_trees import probe_rows
    from app.shared_forests import layout_arrays

    trees = [tree.tree_ for tree in estimator.estimators_]
    classifier = hasattr(estimator, "classes_")
    classes = estimator.classes_ if classifier else None
    n_outputs = int(estimator.n_classes_) if classifier else 1
    n_features = int(estimator.n_features_in_)
    rows = probe_rows(n_features)
    quiet = SklearnModel(estimator).predict_proba if classifier else SklearnModel(estimator).predict
    arrays = layout_arrays(trees, n_outputs, rows, np.asarray(quiet(rows), dtype=np.float64))
    names = getattr(estimator, "feature_names_in_", None)
    meta = {
        "model_class": _qualified_name(estimator),
        "n_features": n_features,
        "feature_names": [str(n) for n in names] if names is not None else None,
        "classes": [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None,
        "classes_dtype": classes.dtype.str if classes is not None and classes.dtype.kind in "iub" else None,
        "single_output": not classifier,
        "trees": len(trees),
    }
    return arrays, meta


@hookimpl
def register_adapters(settings: AdapterSettings) -> list[SklearnAdapter]:
    return [SklearnAdapter(settings)]
