"""A forest as every worker serves it from its shared layout (:mod:`app.shared_trees`), for any adapter.

An adapter turns its trees into the layout's arrays with :func:`layout_arrays`
(trees that expose scikit-learn's ``Tree`` attributes: ``children_left``,
``children_right``, ``feature``, ``threshold``, ``value`` and, where present,
``missing_go_to_left``) and serves a mapped layout through
:class:`SharedForestModel`, which needs nothing but the layout: no estimator,
no import of the library that trained it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.adapters import ModelDescription, ModelSharing
from app.shared_trees import MappedForest


def layout_arrays(
    trees: Sequence[Any], n_outputs: int, probe_rows: np.ndarray, probe_outputs: np.ndarray
) -> dict[str, np.ndarray]:
    """The trees' nodes end to end (child indices made global), with the rows and answers to check against."""
    counts = np.array([tree.node_count for tree in trees], dtype=np.int64)
    ends = np.cumsum(counts)
    roots = ends - counts
    offset = np.repeat(roots, counts)

    def children(name: str) -> np.ndarray:
        raw = np.concatenate([getattr(tree, name) for tree in trees]).astype(np.int64)
        return np.where(raw >= 0, raw + offset, -1)

    return {
        "roots": roots,
        "ends": ends,
        "left": children("children_left"),
        "right": children("children_right"),
        "feature": np.concatenate([np.maximum(tree.feature, 0) for tree in trees]),  # leaves: any valid index
        "threshold": np.concatenate([tree.threshold for tree in trees]),
        "missing_left": np.concatenate([_missing_left(tree) for tree in trees]),
        "value": np.concatenate([np.asarray(tree.value)[:, 0, :n_outputs] for tree in trees]),
        "probe_rows": probe_rows,
        "probe_outputs": probe_outputs,
    }


def _missing_left(tree: Any) -> np.ndarray:
    found = getattr(tree, "missing_go_to_left", None)
    return np.asarray(found, dtype=np.uint8) if found is not None else np.zeros(tree.node_count, dtype=np.uint8)


class SharedForestModel:
    """A forest served from the layout every worker maps, behind the core's LoadedModel contract.

    The layout's description holds what ``describe`` needs: ``model_class``,
    ``n_features``, ``feature_names``, ``classes`` (with ``classes_dtype`` for
    numbers) or ``single_output`` for a regressor, and ``trees``.
    """

    def __init__(self, mapped: MappedForest):
        meta = mapped.meta
        self._mapped = mapped
        self._meta = meta
        dtype = meta.get("classes_dtype") or object
        self.classes = np.asarray(meta["classes"], dtype=dtype) if meta.get("classes") is not None else None
        self.kernel = mapped.kernel
        if self.classes is not None:
            self.predict_proba = mapped.predict  # class fractions averaged over the trees (no cycle to self)

    def predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = self._mapped.predict(X)
        return self.classes.take(proba.argmax(axis=1)), proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes is None:
            return self._mapped.predict(X)
        return self.predict_with_proba(X)[0]

    def sharing(self) -> ModelSharing:
        return ModelSharing("mapped_file", (self._mapped.path,))

    def describe(self) -> ModelDescription:
        meta = self._meta
        return ModelDescription(
            model_class=meta["model_class"],
            task="classification" if self.classes is not None else "regression",
            n_features=meta["n_features"],
            feature_names=meta.get("feature_names"),
            classes=list(self.classes) if self.classes is not None else None,
            extra={"kernel": self.kernel, "trees": meta.get("trees")},
        )
