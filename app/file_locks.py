"""An exclusive lock between the processes of one machine, on a file: what one worker writes, the others wait for."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path, wait_s: float, timed_out: Callable[[], Exception]) -> Iterator[None]:
    """Hold ``path``'s flock (the kernel releases it if its holder dies); raise ``timed_out()`` after ``wait_s``."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise timed_out() from None
                time.sleep(0.05)
        yield
    finally:
        os.close(handle)  # releases the lock
