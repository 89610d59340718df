"""A file's rows for a model with a typed signature: read as its columns' types, checked one row at a time.

One bad row must not fail the whole chunk (``on_error: skip`` writes it to the
error file), so each row is checked on its own, with the same checks and
messages :mod:`app.model_input` gives ``/batch-predict``; the good rows then
become the model's input together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.errors import InvalidFeatures
from app.model_input import row_problem, typed_text
from app.signature import Signature


def where(row: int) -> str:
    return f"row {row:,}"


def is_typed(signature: Signature) -> bool:
    return signature.frame or any(f.nullable for f in signature.fields)


def typed_row(
    signature: Signature, names: Sequence[str], number: int, cells: Sequence[Any], text: bool
) -> tuple[list[Any] | None, str | None]:
    """One row of the file (``cells`` of the columns ``names``, the model's order) read and checked by the
    signature: the row, or the problem with its row number. ``text``: the cells are CSV text; else
    Parquet values, a NaN being a null."""
    try:
        if text:
            named = typed_text(signature, [dict(zip(names, cells, strict=True))]).rows[0]
            row = [named[name] for name in names]  # type: ignore[call-overload]
        else:
            row = [None if isinstance(v, float) and v != v else v for v in cells]
        problem = row_problem(signature, row)
    except InvalidFeatures as exc:
        problem, row = str(exc.description), None
    if problem:
        return None, f"{where(number)}: {problem}"
    return row, None
