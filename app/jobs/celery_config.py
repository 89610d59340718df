"""The Celery application of the job queue (``jobs.backend: celery``), as the server and the workers build it.

The server only sends tasks by name (:class:`app.jobs.service.JobService`);
:mod:`app.jobs.celery_app`, the workers' entry point, adds the task itself.
"""

from __future__ import annotations

from typing import Any

TASK_NAME = "modelserve.run_job"


def build_celery(jobs_config: dict[str, Any]) -> Any:
    """A Celery application for ``jobs_config``: the server uses it to send, workers to run."""
    from celery import Celery

    celery = Celery("modelserve", broker=jobs_config["broker_url"], set_as_current=False)
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=jobs_config["queue"],
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return celery
