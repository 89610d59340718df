"""Turning checked request features into predictions, once for every adapter.

Feature count, named-feature ordering, class indices, labels, probabilities,
confidence and timing live here so that no adapter repeats them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import InvalidFeatures
from app.features import Features, Row
from app.model_input import Columns, ModelInput, model_input
from app.observability import iso_timestamp, record_prediction
from app.registry import ServedModel

if TYPE_CHECKING:
    from app.metrics import Metrics


def utc_timestamp() -> str:
    return iso_timestamp(time.time())


def feature_names_of(served: ServedModel) -> list[str] | None:
    names = served.record.metadata.get("feature_names") or served.description.feature_names
    return list(names) if names is not None else None


def label_table(served: ServedModel) -> list[str] | None:
    """Each class index's label: the sidecar's labels, else the class values as text (cached per model)."""
    table = served.cache.get("labels")
    if table is None:
        table = list(served.labels) if served.labels is not None else [str(c) for c in class_values(served)]
        served.cache["labels"] = table
    return table or None


def class_values(served: ServedModel) -> list[Any]:
    """The model's classes as Python values (NumPy scalars unwrapped), cached per model."""
    values = served.cache.get("class_values")
    if values is None:
        found = served.description.classes or []
        values = served.cache["class_values"] = [c.item() if hasattr(c, "item") else c for c in found]
    return values


def class_positions(served: ServedModel) -> dict[Any, int]:
    positions = served.cache.get("positions")
    if positions is None:
        positions = {c: i for i, c in enumerate(class_values(served))}
        served.cache["positions"] = positions
    return positions


def _class_indices(
    served: ServedModel, raw: np.ndarray, proba: np.ndarray | None
) -> tuple[list[int] | np.ndarray, list[Any] | None]:
    """Each prediction's class index: its position in the model's classes, else the most probable class,
    else the value itself; and the predicted values (None when every prediction is its most probable class,
    and the indices are then an array)."""
    classes = served.cache.get("classes")
    if classes is None:
        classes = served.cache["classes"] = np.asarray(class_values(served), dtype=object)
    if proba is not None and len(raw) > 8 and proba.shape[1] == len(classes):
        # Usually each prediction is its most probable class: one vectorised comparison proves it
        # (in the classes' own dtype when they are numbers: comparing Python objects costs far more).
        best = _columns_argmax(proba)
        numeric = served.description.classes
        if isinstance(numeric, np.ndarray) and numeric.dtype.kind in "iuf" and raw.dtype.kind in "iuf":
            same = bool(np.array_equal(numeric[best], raw))
        else:
            same = bool((classes[best] == raw.astype(object)).all())
        if same:
            return best, None
    positions = class_positions(served)
    values = raw.tolist()
    indices = [positions.get(v) for v in values]
    if None in indices:  # a value that is not a class: the most probable class, else the value itself
        indices = [
            i if i is not None else (int(np.argmax(proba[row])) if proba is not None else int(values[row]))
            for row, i in enumerate(indices)
        ]
    return indices, values


def _columns_argmax(proba: np.ndarray) -> np.ndarray:
    """``proba.argmax(axis=1)`` for few columns, column by column: NumPy reduces a C-ordered row of
    three values at a time, far slower than whole columns."""
    if proba.shape[1] > 16 or proba.flags.f_contiguous:
        return proba.argmax(axis=1)
    best = np.zeros(len(proba), dtype=np.intp)
    top = proba[:, 0].copy()
    for column in range(1, proba.shape[1]):
        values = proba[:, column]
        better = values > top
        best[better] = column
        np.maximum(top, values, out=top)
    return best


def _columns_max(proba: np.ndarray) -> np.ndarray:
    """``proba.max(axis=1)``, column by column (see :func:`_columns_argmax`)."""
    if proba.shape[1] > 16 or proba.flags.f_contiguous or len(proba) < 8:
        return proba.max(axis=1)
    top = proba[:, 0].copy()
    for column in range(1, proba.shape[1]):
        np.maximum(top, proba[:, column], out=top)
    return top


def _label_array(served: ServedModel, table: list[str]) -> np.ndarray:
    labels = served.cache.get("label_array")
    if labels is None:
        labels = served.cache["label_array"] = np.asarray(table, dtype=object)
    return labels


def _check_finite(served: ServedModel, raw: np.ndarray, proba: np.ndarray | None) -> None:
    """Finite inputs can still overflow a model (1e308 times a weight): never answer NaN or Infinity."""
    finite = proba is None or bool(np.isfinite(proba).all())
    if served.description.task == "regression":
        finite = finite and bool(np.isfinite(raw.astype(np.float64)).all())
    if not finite:
        raise InvalidFeatures(
            "The model's output for these features is not a finite number: the values are probably far "
            "outside the range it was trained on."
        )


def run_model(served: ServedModel, X: ModelInput) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's predictions and, for classifiers that have them, probabilities: one call when it can."""
    if served.predict_proba is not None:  # also gives batch results their confidence
        joint = getattr(served.model, "predict_with_proba", None)
        if joint is not None:
            raw, proba = joint(X)
            return np.asarray(raw), np.asarray(proba, dtype=np.float64)
        raw = np.asarray(served.model.predict(X))
        return raw, np.asarray(served.predict_proba(X), dtype=np.float64)
    return np.asarray(served.model.predict(X)), None


@dataclass(slots=True)
class Outputs:
    """What a model answered for a matrix, one entry per row, before it becomes JSON.

    Classifiers have ``indices`` and ``labels`` (and ``proba`` with ``confidences``
    when they give probabilities); regressors have ``values``.
    """

    seconds: float
    indices: list[int] | np.ndarray | None = None
    labels: list[str] | None = None
    proba: np.ndarray | None = None
    confidences: np.ndarray | None = None
    values: np.ndarray | None = None


def recorded_run(
    served: ServedModel, X: ModelInput, metrics: Metrics | None = None, user_id: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """:func:`run_model` and the seconds it took, counted and logged by :func:`record_prediction`.

    A model that raises is counted as a failed prediction and its exception goes on.
    """
    started = time.perf_counter()
    try:
        raw, proba = run_model(served, X)
    except Exception:
        record_prediction(served.name, time.perf_counter() - started, X.shape, False, metrics, user_id)
        raise
    seconds = time.perf_counter() - started
    record_prediction(served.name, seconds, X.shape, True, metrics, user_id)
    return raw, proba, seconds


def interpret(
    served: ServedModel, raw: np.ndarray, proba: np.ndarray | None, seconds: float, labels: bool = True
) -> Outputs:
    """The model's raw answer as :class:`Outputs`; 422 rather than NaN or Infinity.

    ``labels=False`` leaves a classifier's labels out when they are its label
    table's, by index (:func:`label_table`): :mod:`app.answers` picks them itself.
    """
    served.count(len(raw))
    _check_finite(served, raw, proba)
    if served.description.task == "regression":
        return Outputs(seconds, values=raw.reshape(len(raw), -1)[:, 0].astype(np.float64))
    indices, values = _class_indices(served, raw, proba)
    table = label_table(served)
    names: list[str] | None
    if table is None:
        names = [str(v) for v in (values if values is not None else raw.tolist())]
    elif not labels:
        names = None
    elif len(indices) > 8:
        names = _label_array(served, table)[indices].tolist()
    else:
        names = [table[i] for i in indices]
    confidences = _columns_max(proba) if proba is not None else None
    return Outputs(seconds, indices, names, proba, confidences)


def predict(
    served: ServedModel,
    rows: Features | Columns | np.ndarray | Sequence[Row],
    metrics: Metrics | None = None,
    user_id: str | None = None,
    labels: bool = True,
) -> Outputs:
    """Fit the rows to the model, run it (counted in ``metrics``, logged with ``user_id``) and interpret it."""
    X = model_input(served, rows)
    raw, proba, seconds = recorded_run(served, X, metrics, user_id)
    return interpret(served, raw, proba, seconds, labels=labels)


def predict_rows(
    served: ServedModel,
    rows: Features | np.ndarray | Sequence[Row],
    with_probabilities: bool,
    metrics: Metrics | None = None,
) -> tuple[list[dict], float]:
    """Predict every row; return one result dict per row and the seconds the model took."""
    outputs = predict(served, rows, metrics)
    return result_dicts(outputs, with_probabilities), outputs.seconds


def result_dicts(outputs: Outputs, with_probabilities: bool) -> list[dict]:
    """One ``{"prediction", "prediction_label", "confidence"[, "probabilities"]}`` per row."""
    if outputs.values is not None:
        return [{"prediction": v, "confidence": None} for v in outputs.values.tolist()]
    assert outputs.indices is not None and outputs.labels is not None
    proba = outputs.proba
    indices = outputs.indices.tolist() if isinstance(outputs.indices, np.ndarray) else outputs.indices
    confidences = outputs.confidences.tolist() if outputs.confidences is not None else [None] * len(indices)
    results = [
        {"prediction": i, "prediction_label": label, "confidence": c}
        for i, label, c in zip(indices, outputs.labels, confidences, strict=True)
    ]
    if with_probabilities and proba is not None:
        for result, p in zip(results, proba.tolist(), strict=True):
            result["probabilities"] = p
    return results
