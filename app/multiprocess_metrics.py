"""The Prometheus multiprocess directory of one gunicorn server, set up by its master.

gunicorn.conf.py calls :func:`prepare` in the master before any worker forks
(workers inherit ``PROMETHEUS_MULTIPROC_DIR``), :func:`worker_exited` when a
worker dies, and :func:`cleanup` when the master exits. prometheus_client is
imported here only inside functions that run after the variable is set: it
chooses single- or multi-process mode once, when it is first imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from app.system_stats import SERVER_PID_ENV

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The pid of the master that made the directory (a re-executed master, after USR2, makes its own).
OWNER_ENV = "MODELSERVE_METRICS_DIR_OWNER"
TEMP_PREFIX = "modelserve-metrics-"


def prepare(enable_metrics: bool, environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Publish the master's pid; with metrics on, point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used and emptied of old
    samples; otherwise a new temporary directory belongs to this server alone.
    """
    environ[SERVER_PID_ENV] = str(os.getpid())
    if not enable_metrics:
        environ.pop(MULTIPROC_ENV, None)
        return None
    configured = environ.get(MULTIPROC_ENV)
    if configured and OWNER_ENV not in environ:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        environ[MULTIPROC_ENV] = str(path)
        environ[OWNER_ENV] = str(os.getpid())
    return path


def worker_exited(pid: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """Drop a dead worker's live gauges; its counters and histograms keep counting."""
    if environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def cleanup(environ: MutableMapping[str, str] = os.environ) -> None:
    """Remove the directory :func:`prepare` created in this process (never an operator's)."""
    path = environ.get(MULTIPROC_ENV)
    if path and environ.get(OWNER_ENV) == str(os.getpid()):
        shutil.rmtree(path, ignore_errors=True)
