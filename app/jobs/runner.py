"""One attempt at one claimed job: resolve paths, load the model version, score, publish.

The same code runs in the embedded executor and in Celery workers. While it
works, a lease keeper renews the job's lease; every write names the owner, so
a cancelled or taken-over job stops at its next chunk and publishes nothing.
The output is written to a hidden temporary file next to it and renamed at the
end: a reader never sees a half-written result under the output name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from app.errors import ApiError
from app.inference import feature_names_of
from app.jobs.paths import error_file_for, relative_name, resolve_input, resolve_output, temp_file_for
from app.jobs.scoring import Aborted, ModelFailed, ScoreOptions, Summary, score_file
from app.jobs.sources import inspect
from app.jobs.store import Job, JobStore
from app.model_input import signature_of
from app.registry import ModelRegistry
from app.storage_faults import storage_fault

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        registry: ModelRegistry,
        jobs_config: dict[str, Any],
        context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        metrics: Any = None,
    ):
        self.store = store
        self.registry = registry
        self.config = jobs_config
        self.data_dir = Path(jobs_config["data_directory"])
        self.output_dir = Path(jobs_config["output_directory"])
        self.context = context
        #: Where the jobs' predictions are counted (the application's metrics), if anywhere.
        self.metrics = metrics

    def run(self, job: Job, owner: str) -> None:
        """Run a job this owner has claimed, to completed, failed, or (cancelled/taken) nothing."""
        job_id = job["job_id"]
        keeper = _LeaseKeeper(self.store, job_id, owner, self.config["lease_seconds"])
        temps: list[Path] = []
        log.info("job %s started (attempt %d)", job_id, job["attempts"], extra={"job_id": job_id})
        try:
            with self.context():
                keeper.start()
                summary, output, error_file = self._score(job, owner, keeper, temps)
            if not keeper.renew():
                raise Aborted
            if output.exists() and not job["overwrite"]:
                raise _Failed(f"{job['output_path']} was created by someone else meanwhile; not overwritten.")
            os.replace(temps[0], output)
            if summary.rows_failed:
                os.replace(temps[1], error_file)
            elif job["overwrite"] and error_file.exists():
                error_file.unlink()  # from an earlier run of the same output
            self.store.finish(
                job_id,
                owner,
                "completed",
                rows_done=summary.rows_done,
                rows_failed=summary.rows_failed,
                rows_total=summary.rows_done + summary.rows_failed,
                error_file=relative_name(self.output_dir, error_file) if summary.rows_failed else None,
            )
            log.info("job %s completed: %d rows", job_id, summary.rows_done, extra={"job_id": job_id})
        except Aborted:
            log.info("job %s stopped: cancelled or taken over", job_id, extra={"job_id": job_id})
        except (ApiError, ModelFailed, _Failed) as exc:
            message = exc.description if isinstance(exc, ApiError) else str(exc)
            self.store.finish(job_id, owner, "failed", message, error=message)
            log.info("job %s failed: %s", job_id, message, extra={"job_id": job_id})
        except Exception as exc:
            fault = storage_fault(exc, self.output_dir)  # a full or read-only disk: say so
            if fault is None:
                log.exception("job %s failed unexpectedly", job_id, extra={"job_id": job_id})
            else:
                log.error("job %s failed: %s", job_id, exc, extra={"job_id": job_id})
            message = fault.description if fault else f"Internal error while scoring: {type(exc).__name__}."
            self.store.finish(job_id, owner, "failed", message, error=message)
        finally:
            keeper.stop()
            for temp in temps:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()

    def _score(self, job: Job, owner: str, keeper: _LeaseKeeper, temps: list[Path]) -> tuple[Summary, Path, Path]:
        data = resolve_input(self.data_dir, job["data_path"])
        output = resolve_output(self.output_dir, job["output_path"], create=True)
        if output.exists() and not job["overwrite"]:
            raise _Failed(f'{job["output_path"]} already exists; submit with "overwrite": true to replace it.')
        served = self.registry.get_version(job["served_model"], job["model_version"])
        source, plan = inspect(
            data,
            job["format"],
            feature_names_of(served),
            served.description.n_features,
            job["id_column"],
            job["delimiter"],
            signature_of(served),
        )
        total = source.count_rows()
        self.store.renew(job["job_id"], owner, self.config["lease_seconds"], rows_total=total)
        temps += [temp_file_for(output, job["job_id"], job["claim"], kind) for kind in ("", ".errors")]
        options = ScoreOptions(job["return_probabilities"], job["on_error"], self.config["chunk_rows"], self.metrics)

        def progress(summary: Summary) -> bool:
            done = summary.rows_done + summary.rows_failed
            fields = {"rows_done": summary.rows_done, "rows_failed": summary.rows_failed}
            if total is not None and done > total:
                fields["rows_total"] = done
            return not keeper.lost and self.store.renew(job["job_id"], owner, self.config["lease_seconds"], **fields)

        summary = score_file(served, source, plan, temps[0], temps[1], options, progress)
        return summary, output, error_file_for(output)


class _Failed(Exception):
    """The job cannot complete, for a reason the message gives."""


class _LeaseKeeper:
    """Renews a running job's lease in the background, so a slow chunk does not look like a dead runner."""

    def __init__(self, store: JobStore, job_id: str, owner: str, lease_seconds: int):
        self.store, self.job_id, self.owner, self.lease = store, job_id, owner, lease_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"modelserve-lease-{job_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def renew(self) -> bool:
        if not self.lost and not self.store.renew(self.job_id, self.owner, self.lease):
            self.lost = True
        return not self.lost

    def _loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # a store hiccup: the next renewal may work
                log.exception("could not renew the lease of job %s", self.job_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
