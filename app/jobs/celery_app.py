"""Celery workers for batch-scoring jobs (``jobs.backend: celery``).

Start a worker from the project directory, with the server's configuration::

    .venv/bin/celery -A app.jobs.celery_app worker --concurrency 1

Any number of workers, on any number of machines, share the queue
(``jobs.queue`` on ``jobs.broker_url``). With workers on other machines use
``jobs.store: redis`` and a shared filesystem for the data and output
directories. A task only names its job: the worker claims it in the job store,
runs the same :class:`~app.jobs.runner.JobRunner` as the embedded executor, and
writes progress to the same store. Tasks are acknowledged late and rejected
when their worker process dies, so a killed worker's job is delivered again;
each worker process also sweeps the store for jobs whose runner died and
re-sends them, so a job is re-run (or failed after ``jobs.max_attempts``), never lost.

Importing this module does nothing; ``celery -A`` asks for its ``app``
attribute, which builds the worker's Celery application from the configuration.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from app.jobs.celery_config import TASK_NAME, build_celery
from app.services import services

log = logging.getLogger(__name__)

_process: dict[str, Any] = {}


def run_job(job_id: str) -> str:
    """The task: claim the job (re-queueing it first if its last runner died), then run it."""
    service, owner = _services()
    service.store.recover_stale(service.config["max_attempts"], only=job_id)
    job = service.store.claim(job_id, owner, service.config["lease_seconds"])
    if job is None:
        status = _status(service, job_id)
        log.info("job %s not run here: it is %s", job_id, status, extra={"job_id": job_id})
        return status
    service.runner.run(job, owner)
    return _status(service, job_id)


def _status(service: Any, job_id: str) -> str:
    try:
        return service.store.get(job_id)["status"]
    except Exception:
        return "unknown"


def _services() -> tuple[Any, str]:
    """This worker process's job service (built after fork, once per process) and owner id."""
    if _process.get("pid") != os.getpid():
        from app import create_app
        from app.jobs.store import new_owner

        flask_app = create_app()
        service = services(flask_app).jobs
        _process.update(pid=os.getpid(), app=flask_app, service=service, owner=new_owner())
    return _process["service"], _process["owner"]


def _start_sweeper(**_: Any) -> None:
    """In each worker process: re-queue and re-send jobs whose runner died, expire old jobs."""
    service, _owner = _services()
    service.executor.start()


def _worker_app() -> Any:
    from celery import signals

    from app.config import load_config

    celery = build_celery(load_config()["jobs"])
    celery.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)(run_job)
    signals.worker_process_init.connect(_start_sweeper, weak=False)
    return celery


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        if "celery" not in _process:
            _process["celery"] = _worker_app()
        return _process["celery"]
    raise AttributeError(name)
