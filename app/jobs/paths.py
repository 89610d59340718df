"""Where a job may read and write: inside the configured data and output directories, nowhere else.

The rule is the model directory's, from :mod:`app.confined_paths`: a path is
relative, without ``..``, and may be given relative to the directory
(``batch/x.csv``) or, as in the spec's example, relative to the directory the
server runs in and pointing into it (``data/batch/x.csv``). Whatever it names
must resolve, symbolic links followed, inside the directory. Refusals are
400s naming the request field (``data_path``, ``output_path``).
"""

from __future__ import annotations

from pathlib import Path

from app.confined_paths import PathNotFound, PathRefused, existing_file, new_file, relative_path
from app.errors import NotFound
from app.jobs.errors import JobPathError

INPUT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
DATA_DIRECTORY = "the data directory"  # how refusals name them
OUTPUT_DIRECTORY = "the output directory"


def input_format(requested: str) -> str:
    """The format a data path's name says, as the documented pattern reads it: by its ending, any case."""
    name = requested.lower()
    for suffix, fmt in INPUT_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise JobPathError("data_path", "must be a .csv or .parquet file.")


def resolve_input(data_dir: Path, requested: str) -> Path:
    """The real path of ``requested``: a regular file inside ``data_dir``, or 400/404."""
    try:
        return existing_file(data_dir, relative_path(requested, DATA_DIRECTORY), DATA_DIRECTORY)
    except PathRefused as exc:
        raise JobPathError("data_path", str(exc)) from None
    except PathNotFound:
        raise NotFound(f"No file '{requested}' in the data directory ({data_dir}).") from None


def resolve_output(output_dir: Path, requested: str, *, create: bool = False) -> Path:
    """Where to write ``requested``: inside ``output_dir``, parents created when ``create``.

    The file itself may not exist yet; its parent must resolve inside the
    directory, and an existing file must be a regular file, not a link.
    """
    try:
        pure = relative_path(requested, OUTPUT_DIRECTORY)
        if not requested.lower().endswith(".csv"):
            raise JobPathError("output_path", "must end with .csv (the output is a CSV file).")
        return new_file(output_dir, pure, OUTPUT_DIRECTORY, create=create)
    except PathRefused as exc:
        raise JobPathError("output_path", str(exc)) from None


def relative_name(output_dir: Path, path: Path) -> str:
    return path.relative_to(output_dir.resolve()).as_posix()


def error_file_for(output: Path) -> Path:
    """Rows that could not be scored (``on_error: skip``) go next to the output."""
    return output.with_name(output.stem + ".errors.csv")


def temp_file_for(output: Path, job_id: str, claim: str, kind: str = "") -> Path:
    """Hidden, per run: a stale run never deletes the file of the one that replaced it."""
    return output.with_name(f".{output.name}.{job_id}-{claim}{kind}.tmp")
