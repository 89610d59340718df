"""What the host and the server's processes use: memory, CPU, disk.

"The server" is the gunicorn master and its workers when gunicorn.conf.py
published the master's pid (``MODELSERVE_SERVER_PID``), else this process
alone (the Flask development server, tests). Memory use is measured against
the container's cgroup limit when there is one: that, not the host's memory,
is what gets a pod killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

SERVER_PID_ENV = "MODELSERVE_SERVER_PID"
CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def server_processes() -> list[psutil.Process]:
    """This server's processes: the gunicorn master and its workers, or just this process."""
    master = os.environ.get(SERVER_PID_ENV)
    try:
        if master:
            root = psutil.Process(int(master))
            return [root, *root.children()]
    except (psutil.Error, ValueError):
        pass
    return [psutil.Process()]


def server_started_at() -> float:
    """When the server (the gunicorn master, else this process) started, in seconds since the epoch."""
    return server_processes()[0].create_time()


def _each(processes: list[psutil.Process], read) -> list[float]:
    values = []
    for process in processes:
        try:
            values.append(read(process))
        except psutil.Error:  # a worker that exited while we looked
            continue
    return values


def memory_usage_bytes(processes: list[psutil.Process]) -> int:
    """Resident memory of ``processes``, added up."""
    return int(sum(_each(processes, lambda p: p.memory_info().rss)))


class CpuMeter:
    """CPU use of the server's processes since the previous reading, in percent of one core.

    The first reading covers each process's whole life. Workers that exited
    between two readings take their CPU time with them (the reading never
    goes below zero).
    """

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def percent(self, processes: list[psutil.Process]) -> float:
        now = time.monotonic()
        cpu = sum(_each(processes, lambda p: sum(p.cpu_times()[:2])))
        last, self._last = self._last, (now, cpu)
        if last is None or now <= last[0]:
            wall = time.time()
            lifetimes = _each(processes, lambda p: sum(p.cpu_times()[:2]) / max(wall - p.create_time(), 1e-3))
            return round(100 * sum(lifetimes), 2)
        return round(100 * max(cpu - last[1], 0.0) / (now - last[0]), 2)


def memory_used_percent() -> float:
    """Memory in use: of the cgroup's limit when there is one, else of the host's memory."""
    limited = _cgroup_percent()
    return limited if limited is not None else float(psutil.virtual_memory().percent)


def _cgroup_percent() -> float | None:
    for limit_file, usage_file in (
        (CGROUP_V2 / "memory.max", CGROUP_V2 / "memory.current"),
        (CGROUP_V1 / "memory.limit_in_bytes", CGROUP_V1 / "memory.usage_in_bytes"),
    ):
        try:
            limit_text = limit_file.read_text().strip()
            usage = int(usage_file.read_text())
        except (OSError, ValueError):
            continue
        if not limit_text.isdigit() or int(limit_text) >= psutil.virtual_memory().total:
            return None  # "max" or a v1 "unlimited": no limit below the host's memory
        # The kernel reclaims inactive file cache before it kills: count the working set, as kubelet does.
        working_set = max(usage - _inactive_file(limit_file.parent), 0)
        return round(100 * working_set / int(limit_text), 1)
    return None


def _inactive_file(cgroup_dir: Path) -> int:
    try:
        for line in (cgroup_dir / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file"):
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def disk_used_percent(path: Path) -> float:
    """Use of the filesystem holding ``path`` (the state directory), as ``df`` shows it."""
    return float(psutil.disk_usage(str(path)).percent)
