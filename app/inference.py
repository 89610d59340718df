"""Turning checked request features into predictions, once for every adapter.

Feature count, named-feature ordering, class indices, labels, probabilities,
confidence and timing live here so that no adapter repeats them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app.errors import InvalidFeatures
from app.observability import observe_prediction
from app.registry import ServedModel

Row = Sequence[float] | Mapping[str, float]


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def feature_names_of(served: ServedModel) -> list[str] | None:
    names = served.record.metadata.get("feature_names") or served.description.feature_names
    return list(names) if names is not None else None


def to_matrix(served: ServedModel, rows: Sequence[Row]) -> np.ndarray:
    """Return rows as a float64 matrix in the model's feature order, or raise 422."""
    expected = served.description.n_features
    names = feature_names_of(served)
    if expected is None and names is not None:
        expected = len(names)
    ordered: list[Sequence[float]] = []
    for index, row in enumerate(rows):
        where = f"row {index}: " if len(rows) > 1 else ""
        if isinstance(row, Mapping):
            if names is None:
                raise InvalidFeatures(
                    f"{where}model '{served.name}' has no feature names; send features as a list of numbers."
                )
            missing = [n for n in names if n not in row]
            unknown = [k for k in row if k not in names]
            if missing or unknown:
                parts = []
                if missing:
                    parts.append(f"missing {', '.join(missing)}")
                if unknown:
                    parts.append(f"unknown {', '.join(unknown)}")
                raise InvalidFeatures(f"{where}named features do not match the model ({'; '.join(parts)}).")
            ordered.append([row[n] for n in names])
        else:
            if expected is not None and len(row) != expected:
                raise InvalidFeatures(f"{where}expected {expected} features, got {len(row)}.")
            ordered.append(row)
    matrix = np.asarray(ordered, dtype=np.float64)
    if matrix.ndim != 2 or (len(ordered) > 1 and len({len(r) for r in ordered}) != 1):
        raise InvalidFeatures("all rows must have the same number of features.")
    return matrix


def _label(served: ServedModel, index: int, classes: Sequence[Any]) -> str:
    if served.labels is not None:
        return served.labels[index]
    value = classes[index]
    return str(value.item() if hasattr(value, "item") else value)


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


def predict_rows(served: ServedModel, rows: Sequence[Row], with_probabilities: bool) -> tuple[list[dict], float]:
    """Predict every row; return one result dict per row and the seconds the model took."""
    X = to_matrix(served, rows)
    with observe_prediction(served.name, *X.shape) as timing:
        raw = np.asarray(served.model.predict(X))
        proba = None
        if served.predict_proba is not None:  # also gives batch results their confidence
            proba = np.asarray(served.predict_proba(X), dtype=np.float64)
    elapsed = timing.seconds
    served.count(len(X))
    _check_finite(served, raw, proba)

    if served.description.task == "regression":
        return [{"prediction": float(v), "confidence": None} for v in raw.reshape(len(X), -1)[:, 0]], elapsed

    classes = list(served.description.classes or [])
    position = {(c.item() if hasattr(c, "item") else c): i for i, c in enumerate(classes)}
    results = []
    for i, value in enumerate(raw.tolist()):
        index = position.get(value)
        if index is None:
            index = int(np.argmax(proba[i])) if proba is not None else int(value)
        result: dict[str, Any] = {
            "prediction": index,
            "prediction_label": _label(served, index, classes) if classes or served.labels else str(value),
            "confidence": float(proba[i].max()) if proba is not None else None,
        }
        if with_probabilities and proba is not None:
            result["probabilities"] = [float(p) for p in proba[i]]
        results.append(result)
    return results, elapsed
