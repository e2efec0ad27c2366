"""What every worker job shares: the database, the artifact store, and a lease kept alive while it runs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from edgefarm.wire import JobState
from edgefarm_gateway.db import Database
from edgefarm_gateway.jobs import leases
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
        return LeaseKeeper(self.db, job_id, token, self.settings.compile_lease_seconds)


class LeaseKeeper:
    """Renews a job's lease in the background while the (blocking) work runs."""

    def __init__(self, db: Database, job_id: str, token: str, lease: float) -> None:
        self._renew = lambda: leases.renew(db, job_id, token, lease=lease)
        self._interval = lease / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._renew():
                    log.info("lease lost (job cancelled or taken over); its result will be dropped")
                    return
            except Exception:
                log.exception("could not renew the lease; trying again")


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:  # never unpickle a user's file
        return {name: archive[name] for name in archive.files}
