"""glibc malloc settings for a gunicorn worker, so that memory a worker frees goes back to the system.

Every worker of a machine is forked from one master, so most of its memory is shared with the
others; what each worker allocates for itself adds up times the workers. glibc raises its
mmap and trim thresholds after the first large block it frees (a batch's arrays): from then on
freed memory stays in the worker's heap. Fixed thresholds keep large blocks in their own
mappings, given back as soon as they are freed. On a C library other than glibc these calls
do not exist and nothing changes.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's own default for both, which it raises when a large block is freed unless they are set.
THRESHOLD_BYTES = 128 * 1024


def glibc() -> ctypes.CDLL | None:
    """This process's C library if it is glibc (it has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 (glibc has it, musl does not)
        libc.malloc_trim  # noqa: B018
    except (AttributeError, OSError):
        return None
    return libc


def fix_thresholds() -> bool:
    """Keep blocks over :data:`THRESHOLD_BYTES` in their own mappings, and trim a heap's free top over it."""
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES)
    )


def return_freed_memory() -> bool:
    """Give the free pages of every malloc arena back to the system (start-up garbage, once); True if some went."""
    libc = glibc()
    return libc is not None and bool(libc.malloc_trim(0))
