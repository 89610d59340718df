"""Where compiled tree libraries live: one per model content, built once, verified before every load.

Loading a shared library runs its code, like unpickling a file. So a library is
loaded only from the server's own cache directory (created 0700, owned by this
user; refused otherwise), only under the name its content key gives it, and
only if its sha256 matches the JSON sidecar this code wrote next to it after
compiling; a library that does not match is not loaded but compiled again. The
check keeps out truncated, corrupted or foreign files; it is no defence against
someone who can already write as the server's user.

Several gunicorn workers load the same model at the same time: one of them
compiles while the others wait on a per-key lock file, and every file is
written under a temporary name and renamed into place, so no process ever sees
a half-written library. A compile that fails (or times out) leaves a
``<key>.failed`` note so that restarts and other workers do not repeat it:
delete the note to try again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from app.file_locks import exclusive

log = logging.getLogger("app.compiled_trees")


class NativeUnavailable(Exception):
    """Why the native backend cannot serve a model; the message names the reason."""


class CompileFailed(NativeUnavailable):
    """A compile that failed on its own terms (not the machine's): worth remembering, not repeating."""


#: How long a process waits for another one compiling the same model (below gunicorn's 30 s timeout).
LOCK_WAIT_S = 25.0


def sha256_file(handle: int) -> str:
    """sha256 of an open file, read from its start (the same inode that will be judged)."""
    digest = hashlib.sha256()
    os.lseek(handle, 0, os.SEEK_SET)
    while chunk := os.read(handle, 1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


class LibraryCache:
    """A directory of ``<key>.so`` libraries with their ``<key>.json`` sidecars."""

    def __init__(self, directory: Path):
        self.directory = directory.resolve()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
            if info.st_uid != os.geteuid():
                raise NativeUnavailable(f"the cache directory {self.directory} belongs to another user")
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise NativeUnavailable(f"the cache directory {self.directory} is not usable ({exc})") from exc

    def library(self, key: str, build: Callable[[Path], None]) -> Path:
        """The verified library for ``key``, built by ``build(temporary_path)`` first if need be.

        The unlocked first look is silent: a library being replaced right now
        can fail it. Under the lock, a library that still fails verification
        is reported and rebuilt.
        """
        path, _ = self._verified(key)
        if path is not None:
            return path
        self._raise_if_failed_before(key)
        with self._lock(key):
            path, problem = self._verified(key)
            if path is not None:
                return path
            self._raise_if_failed_before(key)
            if problem is not None:
                log.warning("compiled_trees: %s; compiling it again", problem)
            return self._build(key, build)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.so", self.directory / f"{key}.json"

    def _verified(self, key: str) -> tuple[Path | None, str | None]:
        """(the library, None) if it is ours and intact, else (None, what is wrong; None if simply absent)."""
        library, sidecar = self._paths(key)
        try:
            with _open_own_file(sidecar) as handle:
                recorded = json.loads(os.read(handle, 1 << 16))
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as exc:
            return None, f"{sidecar.name} is not usable ({exc})"
        try:
            with _open_own_file(library) as handle:
                actual = sha256_file(handle)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"{library.name} is not usable ({exc})"
        if not isinstance(recorded, dict) or recorded.get("key") != key or recorded.get("sha256") != actual:
            return None, f"{library.name} does not match the sha256 in {sidecar.name}: not loading it"
        return library, None

    def _raise_if_failed_before(self, key: str) -> None:
        note = self.directory / f"{key}.failed"
        try:
            reason = json.loads(note.read_text(encoding="utf-8")).get("reason", "?")
        except (OSError, ValueError):
            return
        raise NativeUnavailable(f"an earlier compile of this model failed ({reason}); delete {note} to try again")

    def _build(self, key: str, build: Callable[[Path], None]) -> Path:
        library, sidecar = self._paths(key)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key[:16]}-", suffix=".so")
        os.close(handle)
        temp = Path(temporary)
        started = time.perf_counter()
        try:
            try:
                build(temp)
            except CompileFailed as exc:
                _write_atomically(self.directory / f"{key}.failed", {"key": key, "reason": str(exc)})
                raise
            os.chmod(temp, 0o500)
            with _open_own_file(temp) as fd:
                digest = sha256_file(fd)
            os.replace(temp, library)
        finally:
            temp.unlink(missing_ok=True)
        seconds = round(time.perf_counter() - started, 3)
        _write_atomically(sidecar, {"key": key, "sha256": digest, "compile_seconds": seconds})
        log.info("compiled_trees: compiled %s in %.2f s", library.name, seconds)
        return library

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """An exclusive per-key lock (flock: released by the kernel if its holder dies)."""

        def timed_out() -> NativeUnavailable:
            return NativeUnavailable(f"another process has been compiling this model for over {LOCK_WAIT_S:.0f} s")

        with exclusive(self.directory / f"{key}.lock", LOCK_WAIT_S, timed_out):
            yield


@contextlib.contextmanager
def _open_own_file(path: Path) -> Iterator[int]:
    """A read handle on ``path`` if it is a regular file of this user that nobody else may write (no symlink)."""
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise PermissionError(f"{path.name} is not a regular file owned by this user and writable only by it")
        yield handle
    finally:
        os.close(handle)


def _write_atomically(path: Path, content: dict[str, object]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(content, out)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
