"""A fitted tabular Pipeline computed with NumPy from the request's typed columns, without a DataFrame.

``Pipeline(ColumnTransformer(OneHotEncoder, SimpleImputer, StandardScaler, ...), linear model)``
spends most of a request building a pandas DataFrame and in the ColumnTransformer's
per-call checks, not in arithmetic. For a closed set of fitted steps the same
arithmetic is done here on the :class:`~app.adapters.Table` the core parsed:

- ColumnTransformer entries: ``"drop"``, ``"passthrough"`` (and the remainder), or a
  step or Pipeline of ``SimpleImputer`` and ``StandardScaler``, ending, if it
  encodes, in a ``OneHotEncoder`` (``categories_``, ``handle_unknown`` error or
  ignore, ``drop``; no infrequent categories);
- a final linear model: LogisticRegression (through the adapter's own verified
  kernel), LinearRegression, Ridge, Lasso, ElasticNet, RidgeClassifier, LinearSVC.

Anything else raises :class:`Unsupported` and the model is served by scikit-learn
as before. A kernel that is built is only used if :func:`disagreement` finds none
on trial rows when the model loads (the sklearn adapter checks). A helper module
of the sklearn adapter (its name starts with ``_``, so it is never loaded as a plugin).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from app.adapters import Table

#: Probabilities may differ from scikit-learn's by this much (labels and regression values: not at all).
PROBA_TOLERANCE = 1e-9
_LINEAR_REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet")
_LINEAR_CLASSIFIERS = ("RidgeClassifier", "LinearSVC")


class Unsupported(Exception):
    """The pipeline holds a step (or a setting) the kernel does not compute: scikit-learn serves it."""


def _missing(value: Any) -> bool:
    return value is None or value != value


@dataclass(frozen=True)
class _Imputer:
    """SimpleImputer's transform: each NaN replaced by its column's learnt value."""

    statistics: tuple[Any, ...]

    def apply(self, block: np.ndarray) -> np.ndarray:
        mask = block != block  # NaN, in float and object columns alike (SimpleImputer's own test)
        if not mask.any():
            return block
        numbers = all(isinstance(s, (int, float)) for s in self.statistics)
        return np.where(mask, np.asarray(self.statistics, dtype=np.float64 if numbers else object), block)


@dataclass(frozen=True)
class _Scaler:
    """StandardScaler's transform: ``X -= mean_``, then ``X /= scale_``, element by element."""

    mean: np.ndarray | None
    scale: np.ndarray | None

    def apply(self, block: np.ndarray) -> np.ndarray:
        if block.dtype != np.float64:
            raise ValueError("a StandardScaler given columns that are not float64")
        if self.mean is not None:
            block = block - self.mean
        if self.scale is not None:
            block = block / self.scale
        return block


#: A one-hot code: the value is the dropped category (all zeros), or is not a known category.
_DROPPED, _UNKNOWN = -1, -2


@dataclass(frozen=True)
class _OneHot:
    """Each feature's categories as output positions (:data:`_DROPPED` for the dropped one), and where
    a null goes: the position of the NaN or None category the encoder learnt, else :data:`_UNKNOWN`."""

    positions: tuple[dict[Any, int], ...]
    nan_at: tuple[int, ...]
    none_at: tuple[int, ...]
    widths: tuple[int, ...]
    ignore_unknown: bool

    def write(self, block: np.ndarray, out: np.ndarray, start: int) -> None:
        out[:, start : start + sum(self.widths)] = 0.0
        rows = np.arange(out.shape[0]) if out.shape[0] > 1 else None
        for j in range(block.shape[1]):
            values = block[:, j].tolist()
            get = self.positions[j].get
            codes = list(map(get, values, repeat(_UNKNOWN, len(values))))
            if _UNKNOWN in codes:  # nulls (NaN never equals a key), or categories the encoder never saw
                known = zip(codes, values, strict=True)
                codes = [self._null_or_unknown(j, v) if c == _UNKNOWN else c for c, v in known]
            if len(codes) == 1:  # one row: no index arrays to build
                if codes[0] >= 0:
                    out[0, start + codes[0]] = 1.0
            else:
                found = np.asarray(codes, dtype=np.intp)
                hit = found >= 0
                if hit.all():
                    out[rows, start + found] = 1.0
                else:
                    out[rows[hit], start + found[hit]] = 1.0
            start += self.widths[j]

    def _null_or_unknown(self, j: int, value: Any) -> int:
        if value is None:
            code = self.none_at[j]
        elif value != value:
            code = self.nan_at[j]
        else:
            code = _UNKNOWN
        if code == _UNKNOWN and not self.ignore_unknown:
            raise ValueError(f"Found unknown categories [{value!r}] in column {j} during transform")
        return code


@dataclass(frozen=True)
class _Entry:
    """One ColumnTransformer entry: the input columns it takes, its column-wise steps, its encoder."""

    names: tuple[str, ...]
    steps: tuple[Any, ...]
    encoder: _OneHot | None

    @property
    def width(self) -> int:
        return sum(self.encoder.widths) if self.encoder is not None else len(self.names)


def _selected(selected: Any, names: Sequence[str]) -> tuple[str, ...]:
    """The input names a fitted ColumnTransformer entry selects (scikit-learn resolves callables when it fits)."""
    if isinstance(selected, (str, int, np.integer)):
        selected = [selected]
    if isinstance(selected, slice) or callable(selected):
        raise Unsupported(f"a column selection such as {selected!r}")
    items = list(selected)
    if items and all(isinstance(i, (bool, np.bool_)) for i in items):
        return tuple(n for n, keep in zip(names, items, strict=True) if keep)
    out = []
    for item in items:
        if isinstance(item, str) and item in names:
            out.append(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and 0 <= item < len(names):
            out.append(names[int(item)])
        else:
            raise Unsupported(f"a column selection such as {item!r}")
    return tuple(out)


def _step(step: Any, count: int) -> Any:
    """A column-wise step of the closed set, read from its fitted public attributes."""
    kind = type(step).__name__
    params = step.get_params(deep=False) if hasattr(step, "get_params") else {}
    if kind == "FunctionTransformer" and params.get("func") is None:
        return None  # "passthrough", as a fitted ColumnTransformer holds it
    if kind == "SimpleImputer":
        missing = params.get("missing_values")
        if params.get("add_indicator") or not (isinstance(missing, float) and missing != missing):
            raise Unsupported("a SimpleImputer with add_indicator or a missing value other than NaN")
        stats = tuple(step.statistics_.tolist())
        if len(stats) != count or any(_missing(s) for s in stats):
            raise Unsupported("a SimpleImputer with a column it learnt no value for")
        return _Imputer(stats)
    if kind == "StandardScaler":
        return _Scaler(getattr(step, "mean_", None) if params.get("with_mean") else None, step.scale_)
    if kind == "OneHotEncoder":
        return _one_hot(step, params, count)
    raise Unsupported(f"a {kind} step")


def _one_hot(encoder: Any, params: dict[str, Any], count: int) -> _OneHot:
    if params.get("min_frequency") is not None or params.get("max_categories") is not None:
        raise Unsupported("a OneHotEncoder with infrequent categories")
    if np.dtype(params.get("dtype")) != np.float64:
        raise Unsupported("a OneHotEncoder whose output is not float64")
    unknown = params.get("handle_unknown")
    if unknown not in ("error", "ignore", "infrequent_if_exist"):
        raise Unsupported(f"a OneHotEncoder with handle_unknown={unknown!r}")
    categories = encoder.categories_
    drops = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(categories)
    if len(categories) != count:
        raise Unsupported("a OneHotEncoder whose categories do not match its columns")
    positions, nan_at, none_at, widths = [], [], [], []
    for known, drop in zip(categories, drops, strict=True):
        at: dict[Any, int] = {}
        nan, none = _UNKNOWN, _UNKNOWN
        for index, value in enumerate(known.tolist()):
            if drop is not None and index == drop:
                position = _DROPPED
            else:
                position = index - int(drop is not None and index > drop)
            if value is None:
                none = position
            elif value != value:
                nan = position
            else:
                at[value] = position
        positions.append(at)
        nan_at.append(nan)
        none_at.append(none)
        widths.append(len(known) - (drop is not None))
    return _OneHot(tuple(positions), tuple(nan_at), tuple(none_at), tuple(widths), unknown != "error")


def _entry(transformer: Any, names: tuple[str, ...]) -> _Entry | None:
    if isinstance(transformer, str):
        if transformer == "drop":
            return None
        if transformer == "passthrough":
            return _Entry(names, (), None)
        raise Unsupported(f"a ColumnTransformer entry {transformer!r}")
    chain = [s for _, s in transformer.steps] if type(transformer).__name__ == "Pipeline" else [transformer]
    steps = [_step(s, len(names)) for s in chain]
    encoder = None
    if steps and isinstance(steps[-1], _OneHot):
        encoder = steps.pop()
    if any(isinstance(s, _OneHot) for s in steps):
        raise Unsupported("a OneHotEncoder that is not the last step of its columns")
    return _Entry(names, tuple(s for s in steps if s is not None), encoder)


def plan(pipeline: Any) -> tuple[tuple[_Entry, ...], Any]:
    """The ColumnTransformer's entries and the final step, or raise :class:`Unsupported` saying why."""
    steps = getattr(pipeline, "steps", None)
    if type(pipeline).__name__ != "Pipeline" or not steps or len(steps) != 2:
        raise Unsupported(f"a {type(pipeline).__name__}: only a Pipeline of a ColumnTransformer and a model")
    columns, final = steps[0][1], steps[1][1]
    if type(columns).__name__ != "ColumnTransformer" or not hasattr(columns, "transformers_"):
        raise Unsupported(f"a Pipeline whose first step is a {type(columns).__name__}, not a fitted ColumnTransformer")
    names = [str(n) for n in getattr(pipeline, "feature_names_in_", ())]
    entries = []
    for _, transformer, selected in columns.transformers_:
        picked = _selected(selected, names)
        entry = _entry(transformer, picked) if picked else None
        if entry is not None:
            entries.append(entry)
    return tuple(entries), final


class TabularKernel:
    """The pipeline's predictions from a :class:`Table`; any other input (or a table of other column
    dtypes than those it was verified on) goes to ``fallback``, scikit-learn's own path."""

    def __init__(self, entries: tuple[_Entry, ...], final: Any, fallback: Any, dtypes: tuple[Any, ...] | None = None):
        self.entries = entries
        self.width = sum(e.width for e in entries)
        self.final = final
        self.fallback = fallback
        self.name = f"tabular+{final.name}"
        self.dtypes = dtypes

    def design(self, table: Table) -> np.ndarray:
        """The ColumnTransformer's output (dense, C order), every value as scikit-learn computes it."""
        X = np.empty((table.length, self.width), dtype=np.float64)
        start = 0
        for entry in self.entries:
            columns = [table.columns[name] for name in entry.names]
            block = np.column_stack(columns) if len(columns) > 1 else columns[0].reshape(-1, 1)
            for step in entry.steps:
                block = step.apply(block)
            if entry.encoder is not None:
                entry.encoder.write(block, X, start)
            else:
                X[:, start : start + entry.width] = block
            start += entry.width
        if np.isnan(X).any():  # what a linear model refuses
            raise ValueError("Input X contains NaN.")
        return X

    def _serves(self, X: Any) -> bool:
        return isinstance(X, Table) and (
            self.dtypes is None or tuple(c.dtype for c in X.columns.values()) == self.dtypes
        )

    def _frame(self, X: Any) -> Any:
        return X.frame() if isinstance(X, Table) else X

    def predict(self, X: Any) -> np.ndarray:
        if not self._serves(X):
            return self.fallback.predict(self._frame(X))
        return self.final.predict(self.design(X))

    def predict_with_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        if not self._serves(X):
            return self.fallback.predict_with_proba(self._frame(X))
        return self.final.predict_with_proba(self.design(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.predict_with_proba(X)[1]


@dataclass(frozen=True)
class LinearFinal:
    """A linear model's ``X @ coef_.T + intercept_`` and what its ``predict`` makes of it."""

    name: str
    coef_t: np.ndarray
    intercept: Any
    classes: np.ndarray | None

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.coef_t + self.intercept
        if self.classes is None:
            return scores
        if scores.ndim == 1 or scores.shape[1] == 1:
            return self.classes.take((scores.reshape(-1) > 0).astype(np.intp))
        return self.classes.take(scores.argmax(axis=1))


def linear_final(final: Any) -> LinearFinal:
    """The final step's arithmetic, for the linear models of the closed set other than LogisticRegression."""
    kind = type(final).__name__
    if kind not in (*_LINEAR_REGRESSORS, *_LINEAR_CLASSIFIERS) or type(final).__module__.split(".")[0] != "sklearn":
        raise Unsupported(f"a final {kind}")
    coef = np.asarray(final.coef_)
    if kind in _LINEAR_REGRESSORS and coef.ndim != 1:
        raise Unsupported(f"a multi-output {kind}")
    classes = getattr(final, "classes_", None) if kind in _LINEAR_CLASSIFIERS else None
    return LinearFinal("linear", coef.T, final.intercept_, classes)


def trial_tables(entries: tuple[_Entry, ...], names: Sequence[str], dtypes: dict[str, str]) -> list[Table]:
    """Rows like the training data (every known category, numbers around each scaler's mean), and each
    column null in turn (where it is a number or a string): as one row and as a batch."""
    rows = 48
    columns: dict[str, np.ndarray] = {}
    for name in names:
        if dtypes[name] == "number":
            columns[name] = np.linspace(-3.0, 3.0, rows)
        elif dtypes[name] == "boolean":
            columns[name] = np.arange(rows) % 2 == 0
        else:
            columns[name] = np.full(rows, "a", dtype=object)
    for entry in entries:
        for j, name in enumerate(entry.names):
            mean, spread = 0.0, 1.0
            for step in entry.steps:
                if isinstance(step, _Scaler):
                    mean = float(step.mean[j]) if step.mean is not None else 0.0
                    spread = float(step.scale[j]) if step.scale is not None else 1.0
                elif isinstance(step, _Imputer) and isinstance(step.statistics[j], (int, float)):
                    mean = float(step.statistics[j])
            if entry.encoder is not None and entry.encoder.positions[j]:
                known = list(entry.encoder.positions[j])
                values = [known[(i + j) % len(known)] for i in range(rows)]
                columns[name] = np.asarray(values, dtype=np.float64 if dtypes[name] == "number" else object)
            elif dtypes[name] == "number":
                columns[name] = mean + spread * np.linspace(-3.0, 3.0, rows)
    tables = [Table(dict(columns), rows), Table({n: c[:1] for n, c in columns.items()}, 1)]
    for name in names:
        if dtypes[name] == "boolean":
            continue
        nulled = dict(columns)
        nulled[name] = columns[name].copy()
        nulled[name][::3] = np.nan
        tables += [Table(nulled, rows), Table({n: c[:1] for n, c in nulled.items()}, 1)]
    return tables


def disagreement(
    kernel: TabularKernel, predict: Callable[[Any], Any], proba: Callable[[Any], Any] | None, tables: Sequence[Table]
) -> str | None:
    """Where the kernel answers a trial table otherwise than scikit-learn's ``predict`` and ``proba``
    do on its DataFrame (None: nowhere).

    Labels and regression values must be equal, probabilities within :data:`PROBA_TOLERANCE`; a table
    scikit-learn refuses the kernel must refuse too (so the signature's probes find the same nulls).
    """
    for table in tables:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an encoder told to ignore unknown categories warns of them
            expected = _outcome(_sklearn_answer, predict, proba, table)
            got = _outcome(_kernel_answer, kernel, proba is not None, table)
        where = f"{table.length} trial row(s)"
        if isinstance(expected, Exception) or isinstance(got, Exception):
            if isinstance(expected, Exception) != isinstance(got, Exception):
                return f"on {where}, scikit-learn {_said(expected)} but the kernel {_said(got)}"
            continue
        if not np.array_equal(expected[0], got[0]):
            return f"on {where}, its predictions differ from scikit-learn's"
        if proba is not None and not np.allclose(got[1], expected[1], rtol=0, atol=PROBA_TOLERANCE):
            return f"on {where}, its probabilities differ from scikit-learn's by more than {PROBA_TOLERANCE}"
    return None


def _sklearn_answer(predict: Callable[[Any], Any], proba: Callable[[Any], Any] | None, table: Table) -> Any:
    frame = table.frame()
    return predict(frame), proba(frame) if proba is not None else None


def _kernel_answer(kernel: TabularKernel, with_proba: bool, table: Table) -> Any:
    return kernel.predict_with_proba(table) if with_proba else (kernel.predict(table), None)


def _outcome(call: Callable[..., Any], *args: Any) -> Any:
    """What ``call(*args)`` returns, or the exception it raises."""
    try:
        return call(*args)
    except Exception as exc:
        return exc


def _said(outcome: Any) -> str:
    return f"raised {type(outcome).__name__}: {outcome}" if isinstance(outcome, Exception) else "answered"
