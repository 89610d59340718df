"""Reading an input file as a header and chunks of numeric rows: CSV always, Parquet with pyarrow.

Columns are matched to the model's feature names when it has them (extra
columns are ignored), else taken in file order; an id column (``id_column``,
or a column named ``id`` that is not a feature) is carried through. Every
problem names its row and column, e.g. ``row 1,204: column petal_width is not numeric``.

A model with a typed signature (strings, nulls: :mod:`app.signature`) gets
its rows read as ``/batch-predict`` reads a CSV body (:func:`app.model_input.typed_text`)
and checked one by one against the signature, so a job scores a file as the
API would score its rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.features import Features
from app.jobs.errors import InputFileError
from app.jobs.typed_rows import is_typed, typed_row, where
from app.signature import Signature

SNIFF_DELIMITERS = (";", "\t", "|")


@dataclass(frozen=True)
class ColumnPlan:
    header: list[str]
    features: list[str]  # file columns in the model's feature order
    indices: list[int]
    id_column: str | None
    id_index: int | None
    #: Set when the model's columns are typed: rows are read by it, not as numbers.
    signature: Signature | None = None


@dataclass
class Chunk:
    """Rows that parsed (numbers, or typed rows; ids; row numbers) and rows that did not (row number, id, message)."""

    values: np.ndarray | Features
    ids: list[Any]
    rows: list[int]
    bad: list[tuple[int, Any, str]] = field(default_factory=list)


def plan_columns(
    header: Sequence[str],
    feature_names: Sequence[str] | None,
    n_features: int | None,
    id_column: str | None,
    signature: Signature | None = None,
) -> ColumnPlan:
    """Decide which columns feed the model, in which order, and which one is the id."""
    header = [h.strip() for h in header]
    if not header or header == [""]:
        raise InputFileError("The file is empty: expected a header row naming the columns.")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise InputFileError(f"The header repeats column(s) {', '.join(duplicates)}.")
    if all(_is_number(h) for h in header):
        raise InputFileError("The first line holds numbers, not column names: add a header row naming the columns.")
    if id_column is not None and id_column not in header:
        raise InputFileError(f"id_column '{id_column}' is not a column of the file (columns: {', '.join(header)}).")
    if id_column is None and "id" in header and "id" not in (feature_names or ()):
        id_column = "id"
    id_index = header.index(id_column) if id_column is not None else None
    if feature_names:
        missing = [n for n in feature_names if n not in header]
        if missing:
            raise InputFileError(_missing_message(header, missing, feature_names))
        features = list(feature_names)
    else:
        features = [h for h in header if h != id_column]
        if n_features is not None and len(features) != n_features:
            hint = _delimiter_hint(header)
            raise InputFileError(
                f"The file has {len(features)} feature column(s) ({', '.join(features)}) but the model expects "
                f"{n_features}.{hint}"
            )
    typed = signature if signature is not None and signature.names and is_typed(signature) else None
    return ColumnPlan(header, features, [header.index(f) for f in features], id_column, id_index, typed)


def _missing_message(header: list[str], missing: list[str], names: Sequence[str]) -> str:
    return (
        f"Missing column(s) {', '.join(missing)}. The model needs {', '.join(names)}; "
        f"the file has {', '.join(header)}.{_delimiter_hint(header)}"
    )


def _delimiter_hint(header: list[str]) -> str:
    if len(header) == 1:
        for sep in SNIFF_DELIMITERS:
            if sep in header[0]:
                shown = "\\t" if sep == "\t" else sep
                return f' The header looks delimited by "{shown}": pass "delimiter": "{shown}" or use commas.'
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class CsvSource:
    """A CSV file read as a stream: one line at a time, never the whole file."""

    def __init__(self, path: Path, delimiter: str = ","):
        self.path = path
        self.delimiter = delimiter

    def header(self) -> list[str]:
        with self.path.open(newline="", encoding="utf-8-sig") as fh:
            try:
                return next(csv.reader(fh, delimiter=self.delimiter), [])
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputFileError(f"The file is not readable as CSV text: {exc}") from None

    def count_rows(self) -> int | None:
        """Lines after the header: the total for progress (blank lines make it an upper bound)."""
        lines, last = 0, b"\n"
        with self.path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"
        return max(lines - 1, 0)

    def chunks(self, plan: ColumnPlan, size: int) -> Iterator[Chunk]:
        width = len(plan.header)
        indices, names, id_index = plan.indices, plan.features, plan.id_index
        with self.path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            next(reader, None)
            values: list[list[float]] = []
            ids: list[Any] = []
            rows: list[int] = []
            bad: list[tuple[int, Any, str]] = []
            number = 0
            try:
                for record in reader:
                    if not record:
                        continue
                    number += 1
                    ident = record[id_index] if id_index is not None and id_index < len(record) else number
                    if len(record) != width:
                        bad.append((number, ident, f"{where(number)}: expected {width} fields, found {len(record)}"))
                    elif plan.signature is not None:
                        row, problem = typed_row(plan.signature, names, number, [record[i] for i in indices], True)
                        if problem:
                            bad.append((number, ident, problem))
                        else:
                            values.append(row)  # type: ignore[arg-type]
                            ids.append(ident)
                            rows.append(number)
                    else:
                        try:
                            parsed = [float(record[i]) for i in indices]
                            if not all(map(math.isfinite, parsed)):
                                raise ValueError
                            values.append(parsed)
                            ids.append(ident)
                            rows.append(number)
                        except ValueError:
                            bad.append((number, ident, _cell_problem(number, record, indices, names)))
                    if len(values) + len(bad) >= size:
                        yield Chunk(_values(plan, values), ids, rows, bad)
                        values, ids, rows, bad = [], [], [], []
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputFileError(f"{where(number + 1)}: not readable as CSV text: {exc}") from None
            if values or bad:
                yield Chunk(_values(plan, values), ids, rows, bad)


def _cell_problem(number: int, record: list[str], indices: list[int], names: list[str]) -> str:
    for i, name in zip(indices, names, strict=True):
        cell = record[i].strip()
        if not cell:
            return f"{where(number)}: column {name} is empty"
        try:
            value = float(cell)
        except ValueError:
            return f"{where(number)}: column {name} is not numeric"
        if not math.isfinite(value):
            return f"{where(number)}: column {name} is not a finite number"
    return f"{where(number)}: not numeric"  # pragma: no cover - one of the cells failed


def _matrix(values: list[list[float]], width: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(values), width)


def _values(plan: ColumnPlan, values: list[list[Any]]) -> np.ndarray | Features:
    return Features(rows=tuple(values)) if plan.signature is not None else _matrix(values, len(plan.indices))


class ParquetSource:
    """A Parquet file read in record batches of the needed columns only."""

    def __init__(self, path: Path):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InputFileError(
                "Parquet input needs pyarrow, which this server does not have: "
                "pip install 'modelserve[parquet]' (or pyarrow), or send a CSV file."
            ) from None
        try:
            self.file = pq.ParquetFile(path)
        except Exception as exc:
            raise InputFileError(f"The file is not readable as Parquet: {exc}") from None

    def header(self) -> list[str]:
        return list(self.file.schema_arrow.names)

    def count_rows(self) -> int | None:
        return self.file.metadata.num_rows

    def check_types(self, plan: ColumnPlan) -> None:
        import pyarrow as pa

        schema = self.file.schema_arrow
        strings = {f.name for f in plan.signature.fields if f.type != "number"} if plan.signature else set()
        for name in plan.features:
            if name in strings:
                continue
            kind = schema.field(name).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
                raise InputFileError(f"Column {name} is not numeric (Parquet type {kind}).")

    def chunks(self, plan: ColumnPlan, size: int) -> Iterator[Chunk]:
        columns = list(dict.fromkeys([*plan.features, *([plan.id_column] if plan.id_column else [])]))
        first = 1
        for batch in self.file.iter_batches(batch_size=size, columns=columns):
            n = batch.num_rows
            numbers = list(range(first, first + n))
            first += n
            if plan.signature is not None:
                yield self._typed_chunk(plan, batch, numbers)
                continue
            matrix = np.empty((n, len(plan.features)), dtype=np.float64)
            nulls = np.zeros((n, len(plan.features)), dtype=bool)
            for j, name in enumerate(plan.features):
                column = batch.column(name)
                nulls[:, j] = column.is_null().to_numpy(zero_copy_only=False)
                matrix[:, j] = column.cast("float64").fill_null(0).to_numpy(zero_copy_only=False)
            ids = batch.column(plan.id_column).to_pylist() if plan.id_column else numbers
            ok = ~nulls.any(axis=1) & np.isfinite(matrix).all(axis=1)
            bad = []
            for i in np.flatnonzero(~ok):
                j = int(np.flatnonzero(nulls[i] | ~np.isfinite(matrix[i]))[0])
                problem = "is empty" if nulls[i, j] else "is not a finite number"
                bad.append((numbers[i], ids[i], f"{where(numbers[i])}: column {plan.features[j]} {problem}"))
            keep = np.flatnonzero(ok)
            yield Chunk(matrix[keep], [ids[i] for i in keep], [numbers[i] for i in keep], bad)

    @staticmethod
    def _typed_chunk(plan: ColumnPlan, batch: Any, numbers: list[int]) -> Chunk:
        ids = batch.column(plan.id_column).to_pylist() if plan.id_column else numbers
        columns = [batch.column(name).to_pylist() for name in plan.features]
        chunk = Chunk(np.empty((0, 0)), [], [])
        good: list[list[Any]] = []
        for i, cells in enumerate(zip(*columns, strict=True)):
            row, problem = typed_row(plan.signature, plan.features, numbers[i], cells, False)
            if problem:
                chunk.bad.append((numbers[i], ids[i], problem))
            else:
                good.append(row)  # type: ignore[arg-type]
                chunk.ids.append(ids[i])
                chunk.rows.append(numbers[i])
        chunk.values = Features(rows=tuple(good))
        return chunk


def open_source(path: Path, fmt: str, delimiter: str = ",") -> CsvSource | ParquetSource:
    if fmt == "parquet":
        return ParquetSource(path)
    if path.stat().st_size == 0:
        raise InputFileError("The file is empty: expected a header row naming the columns.")
    return CsvSource(path, delimiter)


def inspect(
    path: Path,
    fmt: str,
    feature_names: Sequence[str] | None,
    n_features: int | None,
    id_column: str | None = None,
    delimiter: str = ",",
    signature: Signature | None = None,
) -> tuple[CsvSource | ParquetSource, ColumnPlan]:
    """Open the file and check its columns against the model: the checks submit and run share."""
    source = open_source(path, fmt, delimiter)
    plan = plan_columns(source.header(), feature_names, n_features, id_column, signature)
    if isinstance(source, ParquetSource):
        source.check_types(plan)
    return source, plan
