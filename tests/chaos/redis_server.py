"""A redis-server of the test's own, on a free port, that a test may kill and start again.

The shared Redis on 6379 belongs to every test run on the machine; a test
that takes Redis away must use its own. No persistence (``--save ""``,
``--appendonly no``): a restart comes back empty, as a Redis without a disk does.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.deploy.services import Child, redis_answers
from tests.helpers import free_port, poll_until


class RedisServer:
    """``redis-server`` on 127.0.0.1 and a port that stays the same across :meth:`kill` and :meth:`start`."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.child: Child | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 15) -> RedisServer:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.child = Child("redis-server", argv, self.workdir / f"redis-{self.port}.log").start()
        try:
            poll_until(lambda: redis_answers(self.port, self.child), f"redis-server on {self.port}", timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no goodbye to its clients."""
        if self.child is not None:
            self.child.kill()
            self.child.stop()
        self.child = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as behind a network partition."""
        os.killpg(self.child.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.child.process.pid, signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
