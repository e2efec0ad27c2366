"""What every worker job shares: the database, the artifact store, and a lease kept alive while it runs."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from edgefarm.wire import JobState
from edgefarm_gateway.db import Database
from edgefarm_gateway.jobs import leases, service
from edgefarm_gateway.settings import Settings, get_settings
from edgefarm_gateway.storage import ArtifactStore

log = logging.getLogger(__name__)


class WorkerRunner:
    """One per worker process (tasks.py keeps it): its database pool and store are reused across jobs."""

    def __init__(self, db: Database, store: ArtifactStore, settings: Settings) -> None:
        self.db, self.store, self.settings = db, store, settings

    @classmethod
    def from_settings(cls):
        settings = get_settings()
        return cls(Database(settings), ArtifactStore(settings.artifacts_path), settings)

    def claim(self, job_id: str, working_state: JobState) -> str | None:
        """The lease token if this worker won the job; None if it is done, cancelled or held by another."""
        token = leases.claim(self.db, job_id, working_state=working_state, lease=self.settings.compile_lease_seconds,
                             max_attempts=self.settings.compile_max_attempts)
        if token is None:
            log.info("job %s is not waiting (done, cancelled or held by another worker); skipping", job_id)
        return token

    def keep_lease(self, job_id: str, token: str) -> LeaseKeeper:
        return LeaseKeeper(self.db, job_id, token, lease=self.settings.compile_lease_seconds,
                           time_limit=self.settings.compile_time_limit_seconds,
                           memory_limit=self.settings.compile_memory_limit_bytes)


class LeaseKeeper:
    """Keeps a job's lease while the (blocking) work runs, and ends the work when it must stop: cancelled or
    taken over (the lease is no longer this worker's), over its wall-clock limit, or over its memory limit.

    The work cannot be interrupted where it hangs (ONNX Runtime folding a Loop of 10^13 iterations is one native
    call), so ending it ends this pool process and its children; Celery starts a new one. The job is finished
    first (FAILED with the cause, or already CANCELLED), so the message Celery hands back to the broker is
    dropped by the next worker's claim.
    """

    CHECK_SECONDS = 1.0

    def __init__(self, db: Database, job_id: str, token: str, *, lease: float, time_limit: float,
                 memory_limit: int) -> None:
        self._db, self._job_id, self._token, self._lease = db, job_id, token, lease
        self._time_limit, self._memory_limit = time_limit, memory_limit
        # Renewed often enough that a cancel frees the worker within seconds, not a third of a lease.
        self._renew_every = min(lease / 3, 5.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = renewed = time.monotonic()
        while not self._stop.wait(self.CHECK_SECONDS):
            now = time.monotonic()
            if now - started > self._time_limit:
                self._fail_and_end(f"ran longer than {self._time_limit:.0f} s, the limit "
                                   "(EDGEFARM_COMPILE_TIME_LIMIT_SECONDS)")
            used = _memory_in_use()
            if used > self._memory_limit:
                self._fail_and_end(f"used {used / 2**30:.1f} GB of memory, over the limit of "
                                   f"{self._memory_limit / 2**30:.1f} GB (EDGEFARM_COMPILE_MEMORY_LIMIT_BYTES)")
            if now - renewed < self._renew_every:
                continue
            try:
                held = leases.renew(self._db, self._job_id, self._token, lease=self._lease)
            except Exception:
                log.exception("could not renew the lease; trying again")
                continue
            renewed = now
            if not held:
                log.warning("job %s was cancelled or taken over: ending its work", self._job_id)
                _end_this_process()

    def _fail_and_end(self, what: str) -> None:
        def apply(session, job) -> None:
            last = job.events[-1].message if job.events else ""
            service.fail(session, job, f"the {job.type} job {what}" + (f"; its last step: {last}" if last else "")
                         + ". The model may be built to stall or exhaust the converter; if it is a real model "
                         "that needs more, raise the limit on the workers")

        try:
            leases.finish(self._db, self._job_id, self._token, apply)
        finally:
            log.error("job %s %s: ending its work", self._job_id, what)
            _end_this_process()


def _memory_in_use() -> int:
    """Resident memory of this process and its children (the LiteRT and quantizer children)."""
    this = psutil.Process()
    total = this.memory_info().rss
    for child in this.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # it ended meanwhile
            pass
    return total


def _end_this_process() -> None:
    """Children first (they would run on as orphans), then this pool process, at once: a hung native call
    cannot be asked to stop."""
    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:  # never unpickle a user's file
        return {name: archive[name] for name in archive.files}
