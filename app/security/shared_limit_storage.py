"""``shared-memory://`` rate limits: one table of counters that every worker of this machine maps.

The embedded default must hold the spec's limits across gunicorn's workers
without a Redis: the 101st request of a minute is refused whichever worker
answers. A ``limits`` storage (its public interface); the counters live
in a file of ``registry.state_directory`` (``rate-limits.bin``), mapped into every worker's memory: a fixed-size hash
table of (key digest, count, window end) slots, changed under an exclusive
``flock`` of the file. A hit is a hash, a lock, a few slot reads and one write
-- no system call beyond the lock, no disk write on the request's path (the
kernel writes the pages back when it likes; the counts survive a restart).

The lock is released by the kernel when its holder dies, so a SIGKILLed
worker never leaves the others waiting. Keys are hashed with a salt kept in
the file, so no client can choose its way into another's slot.
The table holds :data:`CAPACITY` counters: far more clients than one
machine sees in a window. Past that (or :data:`PROBES` colliding keys), the
counter whose window ends first is taken over, which forgives that client
the rest of its window rather than refusing anyone.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import mmap
import os
import secrets
import struct
import threading
import time
import weakref
from pathlib import Path

from limits.storage import Storage

SCHEME = "modelserve-shared"
FILE_NAME = "rate-limits.bin"
MAGIC = b"MSRL0001"
CAPACITY = 1 << 16
PROBES = 32
_HEADER = struct.Struct("<8sI4x16s")  # magic, capacity, salt
HEADER_SIZE = 64
_SLOT = struct.Struct("<Qqd")  # key digest (0: never used), count, window end (epoch seconds)
SLOT_SIZE = _SLOT.size


class SharedMemoryStorage(Storage):
    """Fixed-window counters in a memory-mapped file shared by the processes of one machine."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = Path(uri.split("://", 1)[1])
        self._size = HEADER_SIZE + CAPACITY * SLOT_SIZE
        self._mask = CAPACITY - 1
        self._thread_lock = threading.Lock()  # flock excludes processes, not the threads of one
        self._fd = -1
        self._open()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reopen(ref))  # a forked child needs a lock of its own

    def __del__(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                salt = self._initialised_salt(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, self._size)
        except BaseException:
            os.close(fd)
            raise
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._salt = fd, salt

    def _initialised_salt(self, fd: int) -> bytes:
        """The table's salt, after laying the table out if the file is new or not ours (under the lock)."""
        if os.fstat(fd).st_size == self._size:
            magic, capacity, salt = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
            if magic == MAGIC and capacity == CAPACITY:
                return salt
        os.ftruncate(fd, 0)
        # Every page allocated now: a full disk fails here, at start-up, never as a SIGBUS mid-request.
        os.posix_fallocate(fd, 0, self._size)
        salt = secrets.token_bytes(16)
        os.pwrite(fd, _HEADER.pack(MAGIC, CAPACITY, salt), 0)
        return salt

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return (OSError, ValueError)

    def _digest(self, key: str) -> int:
        return _digest(key, self._salt)

    def _find(self, digest: int, now: float) -> int:
        """The offset of ``digest``'s slot: its own, else a free or ended one, else the one that ends first."""
        table, mask, unpack = self._map, self._mask, _SLOT.unpack_from
        start = digest & mask
        free = oldest = -1
        oldest_end = float("inf")
        for i in range(PROBES):
            offset = HEADER_SIZE + ((start + i) & mask) * SLOT_SIZE
            held, _, ends = unpack(table, offset)
            if held == digest:
                return offset
            if held == 0:  # never used: the key is not further on
                return free if free >= 0 else offset
            if ends <= now:
                if free < 0:
                    free = offset
            elif ends < oldest_end:
                oldest, oldest_end = offset, ends
        return free if free >= 0 else oldest

    def _lookup(self, key: str) -> tuple[int, float]:
        """(count, window end) of a live window, else (0, 0); reads take no lock (a slot is 24 aligned bytes)."""
        digest, now = self._digest(key), time.time()
        held, count, ends = _SLOT.unpack_from(self._map, self._find(digest, now))
        return (count, ends) if held == digest and ends > now else (0, 0.0)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        digest = self._digest(key)
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                now = time.time()
                offset = self._find(digest, now)
                held, count, ends = _SLOT.unpack_from(self._map, offset)
                if held != digest or ends <= now:  # a new window starts with this hit
                    count, ends = 0, now + expiry
                count += amount
                _SLOT.pack_into(self._map, offset, digest, count, ends)
                return count
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def get(self, key: str) -> int:
        return self._lookup(key)[0]

    def get_expiry(self, key: str) -> float:
        ends = self._lookup(key)[1]
        return ends or time.time()

    def check(self) -> bool:
        return not self._map.closed

    def reset(self) -> int | None:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._map[HEADER_SIZE:] = bytes(self._size - HEADER_SIZE)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return None

    def clear(self, key: str) -> None:
        digest = self._digest(key)
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                offset = self._find(digest, time.time())
                if _SLOT.unpack_from(self._map, offset)[0] == digest:
                    _SLOT.pack_into(self._map, offset, digest, 0, 0.0)  # ended, but still in its probe chain
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=4096)
def _digest(key: str, salt: bytes) -> int:
    """The key's slot digest; cached, as a request asks it three times (hit, count, window end)."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8, key=salt).digest(), "little")
    return digest or 1


def _reopen(ref: weakref.ReferenceType[SharedMemoryStorage]) -> None:
    storage = ref()
    if storage is not None:
        storage._open()
