"""The embedded executor: a few background threads per server worker that run queued jobs.

Each worker process runs one dispatcher thread. It claims queued jobs from the
shared store (atomically: exactly one worker gets each, and no more than
``jobs.concurrency`` run at once across all workers sharing the store), runs
each in its own daemon thread, re-queues jobs whose runner died (lapsed lease,
or a process on this host that exited), and deletes jobs past their retention.
With the Celery backend the same dispatcher only sweeps: it re-sends the jobs it
re-queues and never runs one itself.

On a clean shutdown (SIGTERM, interpreter exit) the worker hands its running
jobs back to the queue at once; after a crash the lease or the dead pid does.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from app.jobs.errors import JobStoreUnavailable
from app.jobs.store import Job, JobStore, new_owner

log = logging.getLogger(__name__)
PURGE_EVERY_SECONDS = 60.0


class JobExecutor:
    """Claims and runs jobs in this process, given the store and three callables of the job service.

    ``run(job, owner)`` runs one claimed job to its end; ``dispatch(job)`` makes
    a re-queued job run again (here, or on Celery); ``expire()`` deletes jobs
    past their retention.
    """

    def __init__(
        self,
        store: JobStore,
        jobs_config: Mapping[str, Any],
        *,
        run: Callable[[Job, str], None],
        dispatch: Callable[[Job], None],
        expire: Callable[[], object],
        run_jobs: bool = True,
    ):
        self.store = store
        self.run_jobs = run_jobs
        self._run, self._dispatch, self._expire = run, dispatch, expire
        self.concurrency: int = jobs_config["concurrency"]
        self.poll_interval: float = jobs_config["poll_interval_ms"] / 1000
        self.max_attempts: int = jobs_config["max_attempts"]
        self.lease_seconds: int = jobs_config["lease_seconds"]
        self.owner = new_owner()
        self._pid: int | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}
        self._purged_at = 0.0

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher in this process (idempotent; after a fork it starts afresh)."""
        with self._lock:
            if self._pid == os.getpid() and not self._stopped.is_set():
                return
            self._pid = os.getpid()
            self.owner = new_owner()
            self._stopped.clear()
            self._running.clear()
        ref = weakref.ref(self)
        threading.Thread(target=_dispatch_loop, args=(ref,), name="modelserve-jobs", daemon=True).start()
        atexit.register(_stop_ref, ref)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, reason: str = "the server is shutting down") -> None:
        """Stop claiming, and hand this process's running jobs back to the queue."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._wake.set()
        with self._lock:
            running = list(self._running)
        for job_id in running:
            try:
                if self.store.release(job_id, self.owner, f"{reason} (pid {os.getpid()})"):
                    log.info("job %s handed back to the queue: %s", job_id, reason, extra={"job_id": job_id})
            except Exception:
                log.exception("could not hand job %s back to the queue", job_id)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs in this process (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                threads = list(self._running.values())
            if not threads:
                return True
            threads[0].join(timeout=max(0.0, deadline - time.monotonic()))
        return False

    # --- one round ------------------------------------------------------------

    def tick(self) -> None:
        """Recover stale jobs, expire old ones, and start queued jobs while there is room."""
        for job, outcome in self.store.recover_stale(self.max_attempts):
            log.warning("job %s %s: %s", job["job_id"], outcome, job["events"][-1].get("detail"))
            if outcome == "requeued":
                self._dispatch(job)
        if time.monotonic() - self._purged_at >= PURGE_EVERY_SECONDS:
            self._purged_at = time.monotonic()
            self._expire()
        while self.run_jobs and not self._stopped.is_set():
            with self._lock:
                if len(self._running) >= self.concurrency:
                    return
            job = self.store.claim_next(self.owner, self.lease_seconds, self.concurrency)
            if job is None:
                return
            self._start_job(job)

    def _start_job(self, job: Job) -> None:
        thread = threading.Thread(
            target=self._run_job, args=(job,), name=f"modelserve-job-{job['job_id'][:8]}", daemon=True
        )
        with self._lock:  # started before anyone can see it: wait_idle joins only started threads
            self._running[job["job_id"]] = thread
            thread.start()

    def _run_job(self, job: Job) -> None:
        try:
            self._run(job, self.owner)
        finally:
            with self._lock:
                self._running.pop(job["job_id"], None)
            self._wake.set()


def _dispatch_loop(ref: weakref.ReferenceType[JobExecutor]) -> None:
    """The dispatcher thread; it ends when its executor stops or is garbage-collected."""
    while True:
        executor = ref()
        if executor is None or executor._stopped.is_set() or executor._pid != os.getpid():
            return
        try:
            executor.tick()
        except JobStoreUnavailable as exc:
            if executor.store.dependency is None:  # a store with one records its outage, warning once
                log.warning("the job dispatcher failed a round: %s; retrying", exc.description)
        except Exception:
            log.exception("the job dispatcher failed a round; retrying")
        wake, interval = executor._wake, executor.poll_interval
        del executor
        wake.wait(interval)
        wake.clear()


def _stop_ref(ref: weakref.ReferenceType[JobExecutor]) -> None:
    executor = ref()
    if executor is not None and executor._pid == os.getpid():
        executor.stop()
