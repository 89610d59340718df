"""A V2 inference request on a served model: its tensors as the model's rows, its answer as output tensors.

The inputs become rows in one of two ways, as MLServer's numpy and pandas
content types do:

- one input of two dimensions, ``[rows, features]`` (any name): a matrix;
- named inputs of one dimension (``[rows]`` or ``[rows, 1]``) each: a table,
  one column per input (BYTES strings, numbers; JSON ``null``, or NaN in a
  floating-point input, is a null), handed whole to the shared parser
  (:func:`app.model_input.model_input`), which checks it against the model's
  signature and names a missing, unknown or mistyped column, an unknown
  category, or a null the column does not take.

Either way the rows then take the one prediction path of ``/api/v1``
(:func:`app.inference.predict`): the same checks, metrics and logs.
The outputs are MLServer's sklearn runtime's: ``predict`` (the class values,
or the numbers of a regressor), and ``predict_proba`` when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.api.v2.tensors import Tensor, TensorError, output_tensor
from app.features import Value
from app.inference import Outputs, feature_names_of, predict
from app.metrics import Metrics
from app.model_input import Columns, signature_of, trial_input
from app.registry import ServedModel

PREDICT, PREDICT_PROBA = "predict", "predict_proba"
OUTPUTS = (PREDICT, PREDICT_PROBA)
#: Request parameter asking for ``predict_proba`` besides ``predict`` (as /api/v1's body field).
PROBABILITIES_PARAMETER = "return_probabilities"
MATRIX_INPUT = "input-0"
#: What a one-feature model's unnamed column may hold to be its matrix.
NUMBERS = frozenset({int, float, bool})


@dataclass(frozen=True, slots=True)
class Wanted:
    """Which outputs a request asked for, and which of them in binary."""

    names: tuple[str, ...]
    binary: frozenset[str]


def wanted_outputs(body: Mapping[str, Any]) -> Wanted:
    """``outputs`` by name (each maybe ``binary_data``), else ``predict`` (with ``predict_proba`` when the
    request's ``return_probabilities`` parameter is true); all binary with ``binary_data_output``."""
    parameters = body.get("parameters") or {}
    all_binary = parameters.get("binary_data_output") is True
    requested = body.get("outputs")
    if not requested:
        names = OUTPUTS if parameters.get(PROBABILITIES_PARAMETER) is True else (PREDICT,)
        return Wanted(names, frozenset(names) if all_binary else frozenset())
    names = tuple(o["name"] for o in requested)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise TensorError(f"Unknown output {unknown[0]!r}; the outputs are {', '.join(OUTPUTS)}.")
    binary = {o["name"] for o in requested if (o.get("parameters") or {}).get("binary_data", all_binary) is True}
    return Wanted(names, frozenset(binary))


def model_rows(served: ServedModel, tensors: Sequence[Tensor]) -> Columns | np.ndarray:
    """The request's rows: one 2-D input's matrix, or a table of named 1-D inputs."""
    if not tensors:
        raise TensorError("The request has no inputs.")
    if len(tensors) == 1 and tensors[0].array.ndim == 2:
        return numeric(tensors[0], signature_of(served).nullable)
    columns: dict[str, list[Value]] = {}
    for tensor in tensors:
        array = tensor.array
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise TensorError(
                f"input '{tensor.name}': shape {list(tensor.array.shape)}; send one input of shape "
                "[rows, features], or one input of shape [rows] per feature, named as the model's features."
            )
        columns[tensor.name] = column_values(tensor.name, array)
    return table_features(columns)


def numeric(tensor: Tensor, nullable: bool = False) -> np.ndarray:
    """A numeric matrix as float64 values: finite, or NaN (a null) where the model takes nulls."""
    if tensor.datatype == "BYTES":
        raise TensorError(
            f"input '{tensor.name}': a matrix is numbers; send a model's string columns as named 1-D BYTES inputs."
        )
    values = tensor.array.astype(np.float64, copy=False)
    if not np.isfinite(values).all() and (not nullable or np.isinf(values).any()):
        takes = "a finite number or null (NaN)" if nullable else "a finite number: the model takes no nulls"
        raise TensorError(f"input '{tensor.name}': every value must be {takes}.")
    return values


def column_values(name: str, array: np.ndarray) -> list[Value]:
    """One named column as Python values for the shared parser, a null (JSON ``null``, or NaN in a
    floating-point column) as None: whether the column takes it is the model's signature's to say."""
    values = array.tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        if np.isinf(array).any():
            raise TensorError(f"input '{name}': every value must be a finite number or null (NaN).")
        values = [None if v != v else v for v in values]
    return values


def table_features(columns: Mapping[str, list[Value]]) -> Columns:
    """Named columns of one length, whole, for the shared parser (:func:`app.model_input.model_input`) to
    check against the model's signature: a missing, unknown or mistyped column, an unknown category or
    a null it does not take is named there."""
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        found = {name: len(column) for name, column in columns.items()}
        raise TensorError(f"The inputs of a table must all have as many rows; got {found}.")
    return Columns(columns, lengths.pop())


def infer(
    served: ServedModel, tensors: Sequence[Tensor], wanted: Wanted, metrics: Metrics | None, user_id: str | None
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Predict and return the output tensors (JSON parts) and their binary chunks, in the order asked."""
    rows = model_rows(served, tensors)
    if not len(rows):
        raise TensorError("The inputs hold no rows: a model predicts at least one.")
    if isinstance(rows, Columns) and feature_names_of(served) is None and len(rows.data) == 1:
        (values,) = rows.data.values()
        if feature_count(served) in (None, 1) and set(map(type, values)) <= NUMBERS:
            rows = np.asarray(values, dtype=np.float64).reshape(-1, 1)  # one unnamed column, one-feature model
    outputs = predict(served, rows, metrics, user_id, labels=False)
    arrays = {PREDICT: predicted_values(served, outputs)}
    if PREDICT_PROBA in wanted.names:
        if outputs.proba is None:
            raise TensorError(f"Model '{served.name}' gives no probabilities; ask for '{PREDICT}' only.")
        arrays[PREDICT_PROBA] = outputs.proba.astype(proba_dtype(served), copy=False)
    parts: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name in wanted.names:
        part, chunk = output_tensor(name, arrays[name], name in wanted.binary)
        parts.append(part)
        chunks.append(chunk)
    return parts, chunks


def feature_count(served: ServedModel) -> int | None:
    """How many columns the model takes, from its signature (None when it does not say)."""
    return len(signature_of(served).fields) or None


def proba_dtype(served: ServedModel) -> np.dtype:
    """The dtype the model's own ``predict_proba`` gives (float32 for XGBoost), probed once per version.

    The shared path computes in float64; a V2 client gets the model's own type, as MLServer sends it.
    The values came from that type, so converting them back loses nothing.
    """
    dtype = served.cache.get("proba_dtype")
    if dtype is None:
        dtype = np.dtype(np.float64)
        X = trial_input(served)
        if served.predict_proba is not None and X is not None:
            try:
                found = np.asarray(served.predict_proba(X)).dtype
            except Exception:  # a probe: the prediction itself reports the model's failures
                found = dtype
            dtype = found if found.kind == "f" else dtype
        served.cache["proba_dtype"] = dtype
    return dtype


def predicted_values(served: ServedModel, outputs: Outputs) -> np.ndarray:
    """What the model's ``predict`` returned, one per row, as a column ``[rows, 1]``: class values
    (in the classes' own dtype) or a regressor's numbers."""
    if outputs.values is not None:
        return outputs.values.reshape(-1, 1)
    classes = served.cache.get("class_array")
    if classes is None:  # once per version: the classes as sent, numbers in their dtype, anything else as text
        found = served.description.classes
        classes = np.asarray(found if found is not None else [])
        if classes.dtype.kind not in "biuf":
            classes = classes.astype(str).astype(object)
        served.cache["class_array"] = classes
    assert outputs.indices is not None
    if not len(classes):  # a classifier that names no classes: its indices are its values
        return np.asarray(outputs.indices).reshape(-1, 1)
    return classes[np.asarray(outputs.indices, dtype=np.intp)].reshape(-1, 1)
