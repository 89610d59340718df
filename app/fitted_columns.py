"""The input columns of a scikit-learn estimator fitted on a DataFrame, read from its public fitted attributes.

scikit-learn records the training columns' names (``feature_names_in_``) but not
their dtypes, so the types are read from what consumes each column: a
ColumnTransformer's encoders (``categories_``) say a column holds strings and
which ones they know; a HistGradientBoosting model fitted with
``categorical_features="from_dtype"`` says which columns were pandas categoricals
(``is_categorical_``). Duck-typed, so the core needs no scikit-learn import.
"""

from __future__ import annotations

from typing import Any

from app.adapters import Column


def sklearn_columns(estimator: Any) -> list[Column] | None:
    """The columns the estimator takes when it needs a DataFrame, else None (a float64 matrix serves it).

    It needs one when a column holds strings or categoricals, or when a
    ColumnTransformer picks columns by name (it refuses arrays then).
    """
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    columns = {str(name): Column(str(name)) for name in names}
    by_name = _walk(estimator, columns)
    if not by_name and all(c.type == "number" for c in columns.values()):
        return None
    return list(columns.values())


def _walk(step: Any, columns: dict[str, Column]) -> bool:
    """Type ``columns`` from the steps that see the raw input; True when one picks columns by name."""
    steps = getattr(step, "steps", None)
    if steps:  # a Pipeline: only its first step sees the input
        return _walk(steps[0][1], columns)
    transformers = getattr(step, "transformers_", None)
    if transformers is not None:  # a fitted ColumnTransformer
        by_name = False
        for _, transformer, selected in transformers:
            picked = _names(selected, list(columns))
            by_name = by_name or _picks_by_name(selected)
            _type_encoded(transformer, picked, columns)
        return by_name
    mask = getattr(step, "is_categorical_", None)
    if mask is not None and getattr(step, "categorical_features", None) == "from_dtype":
        for name, categorical in zip(list(columns), mask, strict=False):
            if categorical:
                columns[name] = Column(name, "string", "category")
    return False


def _names(selected: Any, names: list[str]) -> list[str]:
    """The column names a ColumnTransformer entry selects (names, positions or a boolean mask)."""
    if isinstance(selected, str):
        selected = [selected]
    try:
        items = list(selected)
    except TypeError:  # a slice or a callable: leave those columns as numbers
        return []
    if items and all(isinstance(i, bool) for i in items):
        return [n for n, keep in zip(names, items, strict=False) if keep]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int) and 0 <= item < len(names):
            out.append(names[item])
    return out


def _picks_by_name(selected: Any) -> bool:
    if isinstance(selected, str):
        return True
    try:
        return any(isinstance(i, str) for i in selected)
    except TypeError:
        return False


def _type_encoded(transformer: Any, picked: list[str], columns: dict[str, Column]) -> None:
    """Columns an encoder (alone or first in a pipeline) learnt string categories for become string columns."""
    steps = getattr(transformer, "steps", None)
    first = steps[0][1] if steps else transformer
    encoder = first
    if not hasattr(encoder, "categories_") and steps:  # an imputer first, then the encoder
        encoder = next((s for _, s in steps if hasattr(s, "categories_")), None)
    categories = getattr(encoder, "categories_", None)
    if categories is None or len(categories) != len(picked):
        return
    for name, known in zip(picked, categories, strict=True):
        values = [v for v in known.tolist() if not _is_missing(v)]
        if any(isinstance(v, str) for v in values):
            columns[name] = Column(name, "string", "object", tuple(values))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
