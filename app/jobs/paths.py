"""Where a job may read and write: inside the configured data and output directories, nowhere else.

The rule is the model directory's (:func:`app.model_files.resolve_model_path`):
a path is relative, without ``..``, and may be given relative to the directory
(``batch/x.csv``) or, as in the spec's example, relative to the directory the
server runs in and pointing into it (``data/batch/x.csv``). Whatever it names
must resolve, symbolic links followed, inside the directory.
"""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath

from app.errors import NotFound
from app.jobs.errors import JobPathError

INPUT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _pure(field: str, requested: str) -> PurePosixPath:
    pure = PurePosixPath(requested.replace("\\", "/"))
    if not pure.parts or pure.is_absolute() or requested.startswith("~") or ":" in pure.parts[0]:
        raise JobPathError(field, "must be a relative path inside its directory.")
    if ".." in pure.parts:
        raise JobPathError(field, "must not contain '..'.")
    if "\x00" in requested:
        raise JobPathError(field, "contains a character no file name can hold.")
    return pure


def _candidates(root: Path, pure: PurePosixPath) -> list[Path]:
    """The working-directory reading first (the spec's form), then the directory-relative one."""
    here = Path.cwd() / pure
    return [here, root / pure] if here.absolute().is_relative_to(root) else [root / pure]


def input_format(requested: str) -> str:
    suffix = PurePosixPath(requested).suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise JobPathError("data_path", "must be a .csv or .parquet file.")
    return INPUT_SUFFIXES[suffix]


def resolve_input(data_dir: Path, requested: str) -> Path:
    """The real path of ``requested``: a regular file inside ``data_dir``, or 400/404."""
    pure = _pure("data_path", requested)
    root = data_dir.resolve()
    for candidate in _candidates(root, pure):
        try:
            real = candidate.resolve()
            if not real.is_relative_to(root):
                raise JobPathError("data_path", "resolves outside the data directory (symbolic link).")
            mode = real.stat().st_mode
        except RuntimeError:
            raise JobPathError("data_path", "is a symbolic link loop.") from None
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            raise JobPathError("data_path", "must name a regular file, not a directory or device.")
        return real
    raise NotFound(f"No file '{requested}' in the data directory ({data_dir}).")


def resolve_output(output_dir: Path, requested: str, *, create: bool = False) -> Path:
    """Where to write ``requested``: inside ``output_dir``, parents created when ``create``.

    The file itself may not exist yet; its parent must resolve inside the
    directory, and an existing file must be a regular file, not a link.
    """
    pure = _pure("output_path", requested)
    if pure.suffix.lower() != ".csv":
        raise JobPathError("output_path", "must end with .csv (the output is a CSV file).")
    if create:
        output_dir.mkdir(parents=True, exist_ok=True)
    root = output_dir.resolve()
    target = _candidates(root, pure)[0]
    try:
        parent = target.parent.resolve()
    except RuntimeError:
        raise JobPathError("output_path", "is a symbolic link loop.") from None
    if not parent.is_relative_to(root):
        raise JobPathError("output_path", "resolves outside the output directory (symbolic link).")
    path = parent / target.name
    if path.is_symlink():
        raise JobPathError("output_path", "is a symbolic link; name a plain file.")
    if path.exists() and not path.is_file():
        raise JobPathError("output_path", "names a directory or device, not a file.")
    if create and not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobPathError("output_path", f"its directory cannot be created ({exc.strerror}).") from None
        if not parent.resolve().is_relative_to(root):  # a link raced in
            raise JobPathError("output_path", "resolves outside the output directory (symbolic link).")
    return path


def relative_name(output_dir: Path, path: Path) -> str:
    return path.relative_to(output_dir.resolve()).as_posix()


def error_file_for(output: Path) -> Path:
    """Rows that could not be scored (``on_error: skip``) go next to the output."""
    return output.with_name(output.stem + ".errors.csv")


def temp_file_for(output: Path, job_id: str, claim: str, kind: str = "") -> Path:
    """Hidden, per run: a stale run never deletes the file of the one that replaced it."""
    return output.with_name(f".{output.name}.{job_id}-{claim}{kind}.tmp")
