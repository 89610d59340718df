"""The per-model contract between the core and an adapter.

An adapter knows one family of model files (scikit-learn pickles, XGBoost
boosters, ...). The core asks it to ``load`` a file that already passed the
core's path and integrity checks, and gets back a :class:`LoadedModel`.
Everything else -- feature validation, ordering by name, labels,
probabilities, timing -- lives once in :mod:`app.inference`, not in each adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class AdapterSettings:
    """Runtime options every adapter must honour."""

    #: Threads one prediction may use (OpenMP, BLAS, XGBoost ``nthread``).
    #: One per worker by default: gunicorn workers already use every core.
    compute_threads: int = 1
    #: Serve tree ensembles through Treelite when a model's sidecar does not say
    #: (``"compiled_trees": true/false``); see :mod:`app.compiled_trees`.
    compiled_trees: bool = False
    #: Where compiled tree libraries are cached (the server's own directory:
    #: ``<registry.state_directory>/compiled-trees``). None: no native library, GTIL serves.
    compiled_trees_cache: Path | None = None
    #: Serve tabular Pipelines from the request's typed columns when a model's sidecar does not say
    #: (``"tabular_kernel": true/false``); see the scikit-learn adapter.
    tabular_kernel: bool = True
    #: Where layouts that every worker maps read-only are written
    #: (``<registry.state_directory>/shared-models``); None: each worker keeps its own copy.
    #: See :class:`ModelSharing`.
    shared_models_dir: Path | None = None


@dataclass(frozen=True)
class Column:
    """One input column of a model fitted on a table (a pandas DataFrame).

    ``type`` is what a client sends: ``"number"``, ``"string"`` or ``"boolean"``.
    ``dtype`` is the pandas dtype the model was fitted with (``"float64"``,
    ``"object"``, ``"category"``, ``"bool"``); ``categories`` the values the model
    knows for a string column, when it records them.
    """

    name: str
    type: str = "number"
    dtype: str = "float64"
    categories: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class ModelDescription:
    """What the core needs to know about a loaded model."""

    model_class: str
    task: Task
    n_features: int | None = None
    feature_names: Sequence[str] | None = None
    #: Class values in the order of ``predict_proba``'s columns (classifiers).
    classes: Sequence[Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Set when the model takes a DataFrame: its columns in training order. The core then gives
    #: ``predict`` a DataFrame of exactly these columns and dtypes, not a float64 matrix.
    columns: Sequence[Column] | None = None
    #: With ``columns``: ``predict`` (and ``predict_proba``) also take a :class:`Table` of them, which the
    #: core then gives instead of the DataFrame (building a DataFrame can cost more than the model).
    takes_table: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """A request's checked rows for a model fitted on a DataFrame, column by column, without the DataFrame.

    ``columns`` maps each of ``describe().columns``, in order, to a 1-D array of
    ``length`` values, typed as the DataFrame's column would be: float64 for a
    number (NaN for null), object for a string (NaN for null), bool for a boolean
    (object when it holds a null), and a pandas Categorical where the column's
    dtype is ``category``. :meth:`frame` is the DataFrame the model would get otherwise.
    """

    columns: Mapping[str, Any]
    length: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.length, len(self.columns)

    def __len__(self) -> int:
        return self.length

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.columns, copy=False)


@dataclass(frozen=True)
class ModelSharing:
    """Whether the workers of one machine share a loaded model's memory, and how.

    ``mode`` is ``"mapped_file"`` when the model's bulk lives in ``files``, which
    every worker maps read-only (the pages exist once per machine), or
    ``"private"`` when each worker holds its own copy; ``reason`` then says why.
    The core measures what each file's mapping costs this worker from
    ``/proc/self/smaps``.
    """

    mode: Literal["mapped_file", "private"]
    files: tuple[Path, ...] = ()
    reason: str | None = None

    @classmethod
    def private(cls, reason: str) -> ModelSharing:
        return cls("private", (), reason)


class LoadedModel(Protocol):
    """A model held in memory, ready to predict.

    ``predict`` receives a 2-D float64 array whose rows the core has already
    checked (count of features, finite numbers, order of named features), or a
    pandas DataFrame of ``describe().columns`` when the model describes them (a
    :class:`Table` of them when it says ``takes_table``), and
    returns one value per row: a class value from ``describe().classes`` for
    classifiers, a number for regressors.
    """

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def describe(self) -> ModelDescription: ...


@runtime_checkable
class ProbabilisticModel(Protocol):
    """A classifier that can also return class probabilities."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return an array of shape (rows, classes), columns as ``describe().classes``."""
        ...


@runtime_checkable
class JointPredictionModel(Protocol):
    """A classifier whose predictions follow from its probabilities (optional, for speed).

    When a classifier has it, the core calls ``predict_with_proba`` once instead of
    ``predict`` and ``predict_proba`` one after the other. It must return exactly what
    those two would: the adapter offers it only when that holds for the model.
    """

    def predict_with_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class SharedMemoryModel(Protocol):
    """A loaded model that says whether its memory is shared between workers (optional).

    A model without ``sharing`` is reported as private to each worker, with the
    reason that its adapter does not say.
    """

    def sharing(self) -> ModelSharing: ...


class ModelAdapter(Protocol):
    """Loads one family of model files.

    ``name`` is what clients pass as ``model_type``; ``file_types`` are the file
    suffixes (``".joblib"``) for which this adapter is chosen when no
    ``model_type`` is given. ``load`` may accept other suffixes when asked
    explicitly. It raises :class:`app.errors.ModelLoadError` (or any exception,
    which the core wraps) when the file is not a model it can serve.

    An adapter may also define ``executes_code(path) -> bool``: whether loading
    that file runs code from it (pickle, joblib, Python). Without it the core
    assumes it does, and loads the file only when its sha256 is trusted.

    ``metadata`` is the file's sidecar (:mod:`app.model_files`), with ``sha256``
    always set to the file's digest, which the core checked just before: a key
    for anything an adapter derives from the content and shares between workers
    (in ``AdapterSettings.shared_models_dir``). Models that can share their memory
    say so through :class:`SharedMemoryModel`.
    """

    name: str
    file_types: Sequence[str]

    def load(self, path: Path, metadata: Mapping[str, Any]) -> LoadedModel: ...
