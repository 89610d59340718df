"""Scoring a whole file into a CSV, chunk by chunk, with the core's predictions.

Feature checks, labels and probabilities come from :func:`app.inference.predict_rows`,
exactly as for ``/batch-predict``; this module only streams rows in and out.
The caller gives temporary paths and renames them when the job completes.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.inference import label_table, predict_rows
from app.jobs.errors import InputFileError
from app.jobs.sources import Chunk, ColumnPlan, CsvSource, ParquetSource, where
from app.registry import ServedModel


class RowError(InputFileError):
    """A row that cannot be scored, with ``on_error: fail``: the job fails with its message."""


class Aborted(Exception):
    """The job was cancelled or taken over: stop without publishing anything."""


@dataclass(frozen=True)
class ScoreOptions:
    return_probabilities: bool = False
    on_error: str = "fail"  # or "skip": bad rows go to the error file
    chunk_rows: int = 50_000
    #: Where the predictions are counted (the application's metrics), if anywhere.
    metrics: Any = None


@dataclass
class Summary:
    rows_done: int = 0
    rows_failed: int = 0


def output_header(served: ServedModel, plan: ColumnPlan, with_probabilities: bool) -> list[str]:
    header = [plan.id_column or "row", "prediction"]
    if served.description.task == "classification":
        header.append("prediction_label")
        if with_probabilities and served.predict_proba is not None:
            header += [f"probability_{name}" for name in label_table(served) or []]
    return header


def score_file(
    served: ServedModel,
    source: CsvSource | ParquetSource,
    plan: ColumnPlan,
    output: Path,
    errors: Path,
    options: ScoreOptions,
    on_chunk: Callable[[Summary], bool],
) -> Summary:
    """Write predictions for every row of ``source`` to ``output`` (and bad rows to ``errors``).

    ``on_chunk`` is called after each chunk with the running totals; when it
    returns False the job stopped being this runner's and :class:`Aborted` is raised.
    """
    summary = Summary()
    header = output_header(served, plan, options.return_probabilities)
    error_writer = None
    with output.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        error_fh = None
        try:
            for chunk in source.chunks(plan, options.chunk_rows):
                if chunk.bad:
                    if options.on_error == "fail":
                        raise RowError(chunk.bad[0][2])
                    if error_writer is None:
                        error_fh = errors.open("w", newline="", encoding="utf-8")
                        error_writer = csv.writer(error_fh)
                        error_writer.writerow(["row", plan.id_column or "id", "error"])
                    error_writer.writerows(chunk.bad)
                    summary.rows_failed += len(chunk.bad)
                if len(chunk.rows):
                    writer.writerows(_predict(served, chunk, options))
                    summary.rows_done += len(chunk.rows)
                if not on_chunk(summary):
                    raise Aborted
        finally:
            if error_fh is not None:
                error_fh.close()
    return summary


def _predict(served: ServedModel, chunk: Chunk, options: ScoreOptions) -> list[list[Any]]:
    try:
        results, _ = predict_rows(served, chunk.values, options.return_probabilities, options.metrics)
    except InputFileError:
        raise
    except Exception as exc:
        span = f"{where(chunk.rows[0])} to {chunk.rows[-1]:,}"
        raise ModelFailed(f"The model failed on {span}: {type(exc).__name__}: {exc}") from exc
    lines = []
    for ident, result in zip(chunk.ids, results, strict=True):
        line = [ident, result["prediction"]]
        if "prediction_label" in result:
            line.append(result["prediction_label"])
            line += result.get("probabilities", [])
        lines.append(line)
    return lines


class ModelFailed(Exception):
    """The model raised while predicting a chunk: the job fails with this message."""
