"""Job records in a store every worker shares, and every state transition, each atomic.

A record is a JSON document (see :func:`new_job`). States::

    queued -> running -> completed | failed | cancelled
    queued -> cancelled
    running -> queued        (its runner died or shut down; re-run from the start)

A runner *claims* a queued job and holds a *lease* (``owner``, ``lease_until``)
that it renews while it works. Every later write by the runner names its owner
and is refused once the job is no longer its own (cancelled, or re-queued after
the lease lapsed), so a stale runner never overwrites a newer attempt. A job
whose lease lapsed, or whose owner process on this host is gone, is re-queued
by :meth:`JobStore.recover_stale` until ``max_attempts``, then failed with the reason.

Two implementations share these transitions: SQLite (one file next to the
registry's state, ``BEGIN IMMEDIATE`` per transition) and Redis (a short lock
per transition, for replicas and Celery workers on other machines).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from app.dependencies import Outage
from app.desired_state import utc_now
from app.errors import ValidationFailed
from app.jobs.errors import JobConflict, JobNotFound

Job = dict[str, Any]
ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "cancelled")
STATUSES = (*ACTIVE, *FINISHED)
MAX_EVENTS = 20


def new_owner() -> str:
    """``host:pid:token``: the pid lets a process on the same host see at once that an owner died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` ran on this host in a process that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def new_job(**fields: Any) -> Job:
    now = utc_now()
    job: Job = {
        "job_id": uuid.uuid4().hex,
        "status": "queued",
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "finished_epoch": None,
        "rows_done": 0,
        "rows_total": None,
        "rows_failed": 0,
        "error": None,
        "error_file": None,
        "attempts": 0,
        "owner": None,
        "lease_until": None,
        "idempotency_key": None,
        "fingerprint": None,
        "events": [],
    }
    job.update(fields)
    _event(job, "queued")
    return job


def _event(job: Job, event: str, detail: str | None = None) -> None:
    entry = {"at": utc_now(), "event": event}
    if detail:
        entry["detail"] = detail
    job["events"] = [*job.get("events", []), entry][-MAX_EVENTS:]
    job["updated_at"] = entry["at"]


def _finish(job: Job, status: str, detail: str | None = None) -> None:
    job["status"] = status
    job["finished_at"] = utc_now()
    job["finished_epoch"] = time.time()
    job["owner"] = None
    job["lease_until"] = None
    _event(job, status, detail)


class Tx(Protocol):
    """One atomic view of the store, used only inside :meth:`JobStore._tx`."""

    def get(self, job_id: str) -> Job | None: ...

    def put(self, job: Job) -> None: ...

    def delete(self, job: Job) -> None: ...

    def ids(self, statuses: tuple[str, ...]) -> list[str]:
        """Ids with one of ``statuses``, oldest first."""
        ...

    def id_for_key(self, key: str) -> str | None: ...


class IdempotencyMismatch(ValidationFailed):
    def __init__(self, key: str, job_id: str):
        super().__init__(
            f"Idempotency-Key '{key}' was used for a different request (job {job_id}); use a new key.",
            errors={"headers": {"Idempotency-Key": ["already used for a different request"]}},
        )


class JobStore:
    """The transitions, written once over :class:`Tx`; subclasses provide ``_tx``, ``page``, ``describe``."""

    #: The external service the store lives in (its outages are logged once), or None.
    dependency: Outage | None = None

    def _tx(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Tx]:
        """A view for reads only (``get``, ``id_for_key``): never waits for a transition to end."""
        return self._tx()

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def ping(self) -> bool:
        try:
            self.page(1, 0)
            return True
        except Exception:
            return False

    # --- reads ------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._read() as tx:
            job = tx.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def by_key(self, idempotency_key: str) -> Job | None:
        with self._read() as tx:
            job_id = tx.id_for_key(idempotency_key)
            return tx.get(job_id) if job_id else None

    # --- submission -------------------------------------------------------

    def create(self, job: Job, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Insert ``job``; with a key already used, return that job instead (``created`` False).

        Refused (409) while another queued or running job writes the same output file.
        """
        with self._tx() as tx:
            if idempotency_key is not None:
                existing_id = tx.id_for_key(idempotency_key)
                existing = tx.get(existing_id) if existing_id else None
                if existing is not None:
                    if existing["fingerprint"] != job["fingerprint"]:
                        raise IdempotencyMismatch(idempotency_key, existing["job_id"])
                    return existing, False
            for other_id in tx.ids(ACTIVE):
                other = tx.get(other_id)
                if other is not None and other["output_file"] == job["output_file"]:
                    raise JobConflict(
                        f"Job {other_id} is already writing {job['output_path']}; wait for it or cancel it."
                    )
            job["idempotency_key"] = idempotency_key
            tx.put(job)
            return job, True

    # --- the runner's side ------------------------------------------------

    def claim_next(self, owner: str, lease_seconds: float, max_running: int) -> Job | None:
        """Claim the oldest queued job, unless ``max_running`` jobs already run."""
        with self._tx() as tx:
            if len(tx.ids(("running",))) >= max_running:
                return None
            for job_id in tx.ids(("queued",)):
                job = tx.get(job_id)
                if job is not None:
                    return self._start(tx, job, owner, lease_seconds)
        return None

    def claim(self, job_id: str, owner: str, lease_seconds: float) -> Job | None:
        """Claim this job if it is queued (a Celery task names its job)."""
        with self._tx() as tx:
            job = tx.get(job_id)
            if job is None or job["status"] != "queued":
                return None
            return self._start(tx, job, owner, lease_seconds)

    @staticmethod
    def _start(tx: Tx, job: Job, owner: str, lease_seconds: float) -> Job:
        job.update(
            status="running",
            owner=owner,
            lease_until=time.time() + lease_seconds,
            started_at=utc_now(),
            attempts=job["attempts"] + 1,
            claim=uuid.uuid4().hex[:12],  # names this run's temporary files
            rows_done=0,
            rows_failed=0,
            error=None,
        )
        _event(job, "running", f"attempt {job['attempts']} by {owner}")
        tx.put(job)
        return job

    def _owned(self, job_id: str, owner: str, change: Callable[[Job], None]) -> bool:
        with self._tx() as tx:
            job = tx.get(job_id)
            if job is None or job["status"] != "running" or job["owner"] != owner:
                return False
            change(job)
            tx.put(job)
            return True

    def renew(self, job_id: str, owner: str, lease_seconds: float, **progress: Any) -> bool:
        """Extend the lease and record progress; False once the job is no longer this owner's."""

        def change(job: Job) -> None:
            job["lease_until"] = time.time() + lease_seconds
            job.update({k: v for k, v in progress.items() if v is not None})
            job["updated_at"] = utc_now()

        return self._owned(job_id, owner, change)

    def finish(self, job_id: str, owner: str, status: str, detail: str | None = None, **fields: Any) -> bool:
        assert status in FINISHED

        def change(job: Job) -> None:
            job.update(fields)
            _finish(job, status, detail)

        return self._owned(job_id, owner, change)

    def release(self, job_id: str, owner: str, reason: str) -> bool:
        """Hand a running job back to the queue (its runner is shutting down): not a failed attempt."""

        def change(job: Job) -> None:
            job.update(status="queued", owner=None, lease_until=None, rows_done=0, rows_failed=0)
            job["attempts"] -= 1
            _event(job, "requeued", reason)

        return self._owned(job_id, owner, change)

    def recover_stale(
        self, max_attempts: int, now: float | None = None, only: str | None = None
    ) -> list[tuple[Job, str]]:
        """Re-queue (or fail, after ``max_attempts``) running jobs whose owner is gone.

        Gone: the lease lapsed, or the owner ran on this host in a process that
        has exited. Returns ``(job, "requeued" | "failed")`` for each.
        """
        now = time.time() if now is None else now
        done: list[tuple[Job, str]] = []
        with self._tx() as tx:
            for job_id in [only] if only else tx.ids(("running",)):
                job = tx.get(job_id)
                if job is None or job["status"] != "running":
                    continue
                lapsed = (job["lease_until"] or 0) < now
                if not lapsed and not owner_is_dead(job["owner"]):
                    continue
                why = "its lease lapsed" if lapsed else "its process exited"
                reason = f"the worker running attempt {job['attempts']} ({job['owner']}) stopped: {why}"
                if job["attempts"] >= max_attempts:
                    job["error"] = f"Interrupted {job['attempts']} times; last: {reason}."
                    _finish(job, "failed", reason)
                    done.append((job, "failed"))
                else:
                    job.update(status="queued", owner=None, lease_until=None, rows_done=0, rows_failed=0)
                    _event(job, "requeued", reason)
                    done.append((job, "requeued"))
                tx.put(job)
        return done

    # --- the client's side ------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; its runner stops at the next chunk and removes its temp file."""
        with self._tx() as tx:
            job = tx.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job["status"] in FINISHED:
                raise JobConflict(f"Job {job_id} is already {job['status']}; only queued or running jobs cancel.")
            _finish(job, "cancelled", "cancelled by request")
            tx.put(job)
            return job

    def fail_queued(self, job_id: str, message: str) -> bool:
        """Fail a job that never started (its dispatch failed)."""
        with self._tx() as tx:
            job = tx.get(job_id)
            if job is None or job["status"] != "queued":
                return False
            job["error"] = message
            _finish(job, "failed", message)
            tx.put(job)
            return True

    def purge_finished(self, before_epoch: float) -> list[Job]:
        """Delete finished jobs that ended before ``before_epoch``; return them (their files go too)."""
        with self._tx() as tx:
            expired = []
            for job_id in tx.ids(FINISHED):
                job = tx.get(job_id)
                if job is not None and (job["finished_epoch"] or 0) < before_epoch:
                    tx.delete(job)
                    expired.append(job)
            return expired

    def output_in_use(self, output_file: str) -> bool:
        """Whether a job still on record names this output file (so expiry must not delete it)."""
        with self._tx() as tx:
            return any((job := tx.get(i)) is not None and job["output_file"] == output_file for i in tx.ids(STATUSES))
