"""The prediction endpoints' answers, encoded once as JSON bytes with orjson.

The views return these bytes as the response body; the response schemas in
:mod:`app.api.predictions.schemas` document the same shape, and the tests
check every answer against them.

A single row's answer is one small dict for orjson. A batch answer is up to a
thousand result objects: building them as dicts and encoding those costs
more than most models, so every number is formatted by orjson in one call on
the NumPy array (the same shortest round-trip text it writes for a Python
float) and the rest of each object is a piece of bytes chosen by class index,
all joined once. Keys are written sorted, as ``OPT_SORT_KEYS`` writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from app.inference import Outputs, label_table, utc_timestamp
from app.registry import ServedModel

SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def single_answer(model_name: str, served: ServedModel, outputs: Outputs, with_probabilities: bool) -> bytes:
    """``POST /predict``'s body for one row."""
    body: dict[str, Any]
    if outputs.values is not None:
        body = {"prediction": float(outputs.values[0])}
    else:
        assert outputs.indices is not None and outputs.labels is not None
        body = {"prediction": int(outputs.indices[0]), "prediction_label": outputs.labels[0]}
        if with_probabilities and outputs.proba is not None:
            body["probabilities"] = outputs.proba[0].tolist()
    body.update(
        model_name=model_name,
        prediction_time=outputs.seconds,
        served_model=served.name,
        model_version=served.version,
        timestamp=utc_timestamp(),
    )
    return orjson.dumps(body, option=SORTED)


def batch_answer(model_name: str, served: ServedModel, outputs: Outputs, with_probabilities: bool) -> bytes:
    """``POST /batch-predict``'s body: the envelope's keys in sorted order around the results array."""
    count = len(outputs.values) if outputs.values is not None else len(outputs.indices)  # type: ignore[arg-type]
    head = orjson.dumps(
        {"count": count, "model_name": model_name, "model_version": served.version, "prediction_time": outputs.seconds},
        option=orjson.OPT_SORT_KEYS,
    )
    tail = orjson.dumps({"served_model": served.name, "timestamp": utc_timestamp()}, option=orjson.OPT_SORT_KEYS)
    results = _results(served, outputs, with_probabilities)
    return b"".join((head[:-1], b',"predictions":[', results, b"],", tail[1:], b"\n"))


def _results(served: ServedModel, outputs: Outputs, with_probabilities: bool) -> bytes:
    """The comma-separated result objects, in row order."""
    if outputs.values is not None:
        return _rows(b'{"confidence":null,"prediction":', _numbers(outputs.values), [b"}"] * len(outputs.values))
    assert outputs.indices is not None
    probabilities = outputs.proba if with_probabilities else None
    close = b"}" if probabilities is None else b',"probabilities":['
    if outputs.confidences is None:  # a classifier without probabilities: nothing varies but the class
        return b",".join(_tails(served, outputs, b'{"confidence":null', close))
    columns = [_numbers(outputs.confidences), _tails(served, outputs, b"", close)]
    if probabilities is not None:
        columns += [_number_rows(probabilities), [b"]}"] * len(probabilities)]
    return _rows(b'{"confidence":', *columns)


def _tails(served: ServedModel, outputs: Outputs, lead: bytes, close: bytes) -> list[bytes]:
    """Each row's ``,"prediction":i,"prediction_label":"..."`` piece: one per class, picked by index."""
    assert outputs.indices is not None
    table = label_table(served)
    if table is None:  # labels are the predicted values themselves: one piece per (index, label)
        assert outputs.labels is not None
        pairs = list(zip(_ints(outputs.indices), outputs.labels, strict=True))
        made = {pair: _tail(*pair, lead, close) for pair in dict.fromkeys(pairs)}
        return [made[pair] for pair in pairs]
    key = ("answer_tails", lead, close)
    pieces = served.cache.get(key)
    if pieces is None:  # the labels of app.inference.interpret are this table's, by index
        pieces = served.cache[key] = np.array([_tail(i, label, lead, close) for i, label in enumerate(table)], object)
    return pieces[np.asarray(outputs.indices, dtype=np.intp)].tolist()


def _tail(index: int, label: str, lead: bytes, close: bytes) -> bytes:
    return b"".join((lead, b',"prediction":', orjson.dumps(index), b',"prediction_label":', orjson.dumps(label), close))


def _ints(indices: Any) -> list[int]:
    return indices.tolist() if isinstance(indices, np.ndarray) else list(indices)


def _numbers(values: np.ndarray) -> list[bytes]:
    """Each float64 as orjson writes it (``[a,b,c]`` split at the commas)."""
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=_NUMPY)[1:-1].split(b",")


def _number_rows(matrix: np.ndarray) -> list[bytes]:
    """Each row of a float64 matrix as ``a,b,c`` (``[[a,b,c],[d,e,f]]`` split at ``],[``)."""
    return orjson.dumps(np.ascontiguousarray(matrix, dtype=np.float64), option=_NUMPY)[2:-2].split(b"],[")


def _rows(lead: bytes, *columns: list[bytes]) -> bytes:
    """``lead + column pieces`` for every row, rows joined by commas, in one join (no per-row bytes)."""
    n = len(columns[0])
    stride = len(columns) + 1
    parts: list[bytes] = [b""] * (stride * n)
    parts[0::stride] = [b"," + lead] * n
    parts[0] = lead
    for offset, column in enumerate(columns, start=1):
        parts[offset::stride] = column
    return b"".join(parts)
