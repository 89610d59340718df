"""What the job resources call: submit, look up, list, cancel, find the result; dispatch and expiry."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import stat
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from app.errors import NotFound
from app.inference import feature_names_of
from app.jobs.celery_config import TASK_NAME
from app.jobs.errors import BrokerUnavailable, JobConflict
from app.jobs.executor import JobExecutor
from app.jobs.paths import input_format, relative_name, resolve_input, resolve_output
from app.jobs.runner import JobRunner
from app.jobs.sources import inspect
from app.jobs.store import STATUSES, IdempotencyMismatch, Job, JobStore, new_job
from app.model_input import signature_of
from app.registry import ModelRegistry
from app.storage_faults import require_writable

log = logging.getLogger(__name__)

#: The request fields that make two submissions "the same request" for an Idempotency-Key.
REQUEST_FIELDS = (
    "data_path",
    "output_path",
    "model_name",
    "return_probabilities",
    "on_error",
    "overwrite",
    "id_column",
    "delimiter",
)


class JobService:
    def __init__(
        self,
        settings: dict[str, Any],
        registry: ModelRegistry,
        store: JobStore,
        context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        metrics: Any = None,
    ):
        self.config: dict[str, Any] = settings["jobs"]
        self.registry = registry
        self.store = store
        self.data_dir = Path(self.config["data_directory"])
        self.output_dir = Path(self.config["output_directory"])
        self.runner = JobRunner(store, registry, self.config, context, metrics)
        self.executor = JobExecutor(
            store,
            self.config,
            run=self.runner.run,
            dispatch=self.dispatch,
            expire=self.expire,
            run_jobs=self.config["backend"] == "embedded",
        )
        self._celery: Any = None

    # --- submission -------------------------------------------------------

    def submit(self, request: dict[str, Any], idempotency_key: str | None) -> tuple[Job, bool]:
        """Check and record a job, then hand it to the executor or Celery; ``created`` False on a retry."""
        self.executor.start()
        fingerprint = hashlib.sha256(
            json.dumps({k: request.get(k) for k in REQUEST_FIELDS}, sort_keys=True).encode()
        ).hexdigest()
        if idempotency_key is not None:
            existing = self.store.by_key(idempotency_key)
            if existing is not None:  # before the checks: a retry after completion gets its job back
                if existing["fingerprint"] != fingerprint:
                    raise IdempotencyMismatch(idempotency_key, existing["job_id"])
                return existing, False
        fmt = input_format(request["data_path"])
        data = resolve_input(self.data_dir, request["data_path"])
        output = resolve_output(self.output_dir, request["output_path"], create=True)
        require_writable(output.parent)  # a full or read-only disk: 507 / 503 now, not a failed job later
        if output.exists() and not request["overwrite"]:
            raise JobConflict(
                f'output_path {request["output_path"]} already exists; pass "overwrite": true to replace it.'
            )
        served = self.registry.get(request["model_name"])
        inspect(
            data,
            fmt,
            feature_names_of(served),
            served.description.n_features,
            request["id_column"],
            request["delimiter"],
            signature_of(served),
        )
        job = new_job(
            **{k: request[k] for k in REQUEST_FIELDS},
            served_model=served.name,
            model_version=served.version,
            format=fmt,
            output_file=relative_name(self.output_dir, output),
            backend=self.config["backend"],
            fingerprint=fingerprint,
        )
        job, created = self.store.create(job, idempotency_key)
        if created:
            log.info("job %s queued: %s -> %s", job["job_id"], job["data_path"], job["output_path"])
            self.dispatch(job)
        return job, created

    def dispatch(self, job: Job) -> None:
        """Make a queued job run: wake the local executor, or send it to the Celery workers."""
        if self.config["backend"] == "embedded":
            self.executor.wake()
            return
        try:
            self.celery().send_task(TASK_NAME, args=[job["job_id"]], queue=self.config["queue"], ignore_result=True)
        except Exception as exc:
            message = f"The Celery broker did not take the job: {type(exc).__name__}: {exc}"
            self.store.fail_queued(job["job_id"], message)
            raise BrokerUnavailable(message) from None

    def celery(self) -> Any:
        if self._celery is None:
            from app.jobs.celery_config import build_celery

            self._celery = build_celery(self.config)
        return self._celery

    # --- queries ----------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def counts_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (shared store: the same answer from every worker)."""
        return {state: self.store.page(1, 0, state)[1] for state in STATUSES}

    def page(self, limit: int, offset: int, status: str | None) -> tuple[list[Job], int]:
        self.executor.start()
        return self.store.page(limit, offset, status)

    def cancel(self, job_id: str) -> Job:
        return self.store.cancel(job_id)

    def result_file(self, job_id: str, errors: bool = False) -> tuple[Job, Path]:
        """The completed job's output (or error file): 409 before completion, 404 once expired."""
        job = self.store.get(job_id)
        if job["status"] != "completed":
            detail = f": {job['error']}" if job.get("error") else ""
            raise JobConflict(f"Job {job_id} is {job['status']}{detail}; the result exists once it is completed.")
        name = job["error_file"] if errors else job["output_file"]
        if name is None:
            raise NotFound(f"Job {job_id} has no error file: every row was scored.")
        root = self.output_dir.resolve()
        path = (root / name).resolve()
        try:
            regular = path.is_relative_to(root) and stat.S_ISREG(path.stat().st_mode)
        except OSError:
            regular = False
        if not regular:
            raise NotFound(f"The result of job {job_id} ({name}) no longer exists in the output directory.")
        return job, path

    # --- retention --------------------------------------------------------

    def expire(self, now: float | None = None) -> list[Job]:
        """Delete finished jobs past ``jobs.retention_hours``, with their outputs and error files."""
        hours = self.config["retention_hours"]
        if not hours:
            return []
        now = time.time() if now is None else now
        expired = self.store.purge_finished(now - hours * 3600)
        root = self.output_dir.resolve()
        for job in expired:
            for name in (job.get("output_file"), job.get("error_file")):
                if job["status"] != "completed" or not name or self.store.output_in_use(name):
                    continue
                path = root / name
                if path.resolve().is_relative_to(root) and not path.is_symlink():
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            log.info("job %s expired", job["job_id"], extra={"job_id": job["job_id"]})
        return expired


def build_job_service(app: Any, settings: dict[str, Any], registry: ModelRegistry, metrics: Any = None) -> JobService:
    """The per-worker job service; jobs run inside an application context, their predictions counted in ``metrics``."""
    import weakref

    from app.jobs.backends import build_job_store

    ref = weakref.ref(app)

    def context() -> AbstractContextManager[Any]:
        flask_app = ref()
        return flask_app.app_context() if flask_app is not None else contextlib.nullcontext()

    return JobService(settings, registry, build_job_store(settings), context, metrics)
