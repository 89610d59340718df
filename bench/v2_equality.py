"""modelserve's /v2 and MLServer answer the same V2 request alike: output names, datatypes, shapes, values.

Used by the bench (``python -m bench.v2_equality``, also before its V2 rows)
and by ``tests/integration/test_v2_mlserver.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.models import batch_rows, mlserver_columns, penguin_rows
from bench.servers import post, v2_body

TOLERANCE = 1e-6


def requests_to_compare(model: str = "iris") -> list[tuple[str, dict[str, Any]]]:
    """The V2 bodies both servers are sent: one row and a batch, default output and both outputs.

    ``penguins``: the rows as MLServer's ``pd`` content type takes a DataFrame
    (:func:`bench.models.mlserver_columns`: a BYTES input per string column).
    """
    both = [{"name": "predict"}, {"name": "predict_proba"}]
    if model == "penguins":
        one, many = mlserver_columns(penguin_rows(1)), mlserver_columns(penguin_rows(150))
    else:
        one, many = v2_body(batch_rows(1)), v2_body(batch_rows(150))
    return [
        ("one row, default output", one),
        ("one row, predict and predict_proba", {**one, "outputs": both}),
        ("150 rows, predict and predict_proba", {**many, "outputs": both}),
    ]


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """What differs between two V2 responses' outputs (empty: the same to :data:`TOLERANCE`)."""
    found: list[str] = []
    names = [o["name"] for o in ours.get("outputs", [])], [o["name"] for o in theirs.get("outputs", [])]
    if names[0] != names[1]:
        return [f"output names {names[0]} != {names[1]}"]
    for a, b in zip(ours["outputs"], theirs["outputs"], strict=True):
        for key in ("datatype", "shape"):
            if a[key] != b[key]:
                found.append(f"{a['name']}.{key}: {a[key]} != {b[key]}")
        if a["datatype"] == "BYTES" or b["datatype"] == "BYTES":  # class names: the same text
            if a["data"] != b["data"]:
                found.append(f"{a['name']}.data differs")
            continue
        values = np.asarray(a["data"], dtype=np.float64), np.asarray(b["data"], dtype=np.float64)
        if values[0].shape != values[1].shape or not np.allclose(*values, rtol=0, atol=TOLERANCE):
            found.append(f"{a['name']}.data differs beyond {TOLERANCE}")
    return found


def compare(ours_url: str, theirs_url: str, headers: dict[str, str], model: str = "iris") -> dict[str, list[str]]:
    """Send each body to both URLs; return each request's differences (a failed request is one)."""
    report: dict[str, list[str]] = {}
    for title, body in requests_to_compare(model):
        status_a, a = post(ours_url, body, headers)
        status_b, b = post(theirs_url, body)
        if status_a != 200 or status_b != 200:
            report[title] = [f"status {status_a} (modelserve) / {status_b} (MLServer): {a} / {b}"]
            continue
        report[title] = differences(a, b)
    return report
