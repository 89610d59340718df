"""One rule for every file a request names: a relative path that stays, links followed, inside its directory.

Loading a pickle runs code and a job reads and writes where it is told, so
``model_path``, ``data_path`` and ``output_path`` all go through here:

- the path is relative: no absolute path, no ``~``, no drive (``C:``), no
  ``..``, no NUL byte or other control character; backslashes count as separators;
- it may be given relative to the directory (``iris.joblib``) or, as in the
  spec's examples, relative to the working directory and pointing into the
  directory (``models/trained/iris.joblib``): that reading is tried first when
  it lies inside the directory, then the directory-relative one;
- symbolic links are followed and what they lead to must lie inside the
  directory: a link that leads out, or a link loop, is refused;
- a file to read must be a regular file (not a directory, FIFO or device); a
  file to write has its parent inside the directory and is not itself a
  symbolic link, a directory or a device.

Callers turn :class:`PathRefused` (400) and :class:`PathNotFound` (404) into
their own errors, naming their own field.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path, PurePosixPath

#: What :func:`relative_path` accepts, as the start of a pattern for the OpenAPI document: a file,
#: not absolute or from ``~``, no drive (a colon in the first part), no ``..`` part, no control character.
RELATIVE_PATH_PATTERN = r"^(?![.\\/]*$)(?![\\/~])(?![^\\/]*:)(?!(?:.*[\\/])?\.\.(?:[\\/]|$))[^\x00-\x1f\x7f-\x9f]*"
#: Control characters (C0, DEL, C1): no file name needs one, and they break log lines and headers
#: (a job's output name goes into its download's Content-Disposition).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def path_pattern(suffixes: list[str]) -> str:
    """A relative path ending with one of ``suffixes`` (``".csv"``), in any case, as a pattern."""
    spelled = ["".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in s.lstrip(".")) for s in suffixes]
    return RELATIVE_PATH_PATTERN + r"\.(?:" + "|".join(spelled) + ")$"


class PathRefused(ValueError):
    """The path breaks the rule; the message says how, worded to follow the field's name."""


class PathNotFound(LookupError):
    """The path is acceptable but no file is there."""


def relative_path(requested: str, where: str) -> PurePosixPath:
    """Check ``requested`` as text, before anything on disk is looked at; ``where`` names the directory."""
    if "\x00" in requested:
        raise PathRefused("contains a NUL byte, which no file name can hold.")
    control = _CONTROL.search(requested)
    if control is not None:
        raise PathRefused(f"contains a control character (U+{ord(control.group()):04X}); file names here hold none.")
    pure = PurePosixPath(requested.replace("\\", "/"))
    if not pure.parts or pure.is_absolute() or requested.startswith("~") or ":" in pure.parts[0]:
        raise PathRefused(f"must be a relative path inside {where}.")
    if ".." in pure.parts:
        raise PathRefused("must not contain '..'.")
    return pure


def existing_file(directory: Path, relative: PurePosixPath, where: str) -> Path:
    """The real path of the regular file ``relative`` names inside ``directory``."""
    root = directory.resolve()
    for candidate in _candidates(directory, root, relative):
        try:
            real = candidate.resolve()
        except RuntimeError:  # Python 3.11 reports a link loop here
            raise PathRefused("is a symbolic link loop.") from None
        if not real.is_relative_to(root):
            raise PathRefused(f"resolves outside {where} (symbolic link).")
        try:
            mode = real.stat().st_mode
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathRefused("is a symbolic link loop.") from None
            continue  # missing, name too long, permission denied: try the next reading
        if not stat.S_ISREG(mode):
            raise PathRefused("must name a regular file, not a directory or device.")
        return real
    raise PathNotFound(str(relative))


def new_file(directory: Path, relative: PurePosixPath, where: str, *, create: bool = False) -> Path:
    """Where to write ``relative`` inside ``directory``; the directories on the way are made when ``create``.

    The file itself may not exist yet: its parent must resolve inside the
    directory, and whatever is already there must be a regular file, not a link.
    """
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    target = _candidates(directory, root, relative)[0]
    try:
        parent = target.parent.resolve()
    except RuntimeError:
        raise PathRefused("is a symbolic link loop.") from None
    if not parent.is_relative_to(root):
        raise PathRefused(f"resolves outside {where} (symbolic link).")
    path = parent / target.name
    try:
        existing = path.lstat()
    except FileNotFoundError:
        existing = None
    except OSError as exc:  # a name too long for the filesystem, a file in place of a directory
        raise PathRefused(f"cannot be a file here ({exc.strerror}).") from None
    if existing is not None and stat.S_ISLNK(existing.st_mode):
        raise PathRefused("is a symbolic link; name a plain file.")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise PathRefused("names a directory or device, not a file.")
    if create and not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PathRefused(f"its directory cannot be created ({exc.strerror}).") from None
        if not parent.resolve().is_relative_to(root):  # a link raced in
            raise PathRefused(f"resolves outside {where} (symbolic link).")
    return path


def _candidates(directory: Path, root: Path, relative: PurePosixPath) -> list[Path]:
    """The working-directory reading first when it lies inside the directory, then the directory-relative one.

    "Inside" is judged on the directory as configured and as resolved, so the
    spec's form also works when the directory is reached through a symbolic link.
    """
    here = Path.cwd() / relative
    if here.is_relative_to(root) or here.is_relative_to(os.path.abspath(directory)):
        return [here, root / relative]
    return [root / relative]
