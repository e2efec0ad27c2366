"""What a holder of a job (a compile worker now, a device agent later) does with it: claim, renew, finish.

A claim gives a random token and a lease. Only the token's holder can renew or finish the job, and only
while the job is still running: a result that arrives after a cancel, or after the lease expired and the
job went to someone else, is dropped rather than overwriting the newer truth.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy.orm import Session

from edgefarm.wire import JobState
from edgefarm_gateway.db import Database
from edgefarm_gateway.jobs import repository, service
from edgefarm_gateway.orm import Job


def claim(db: Database, job_id: str, *, working_state: JobState, lease: float, max_attempts: int) -> str | None:
    token = secrets.token_hex(16)
    with db.session() as session:
        if not repository.claim(session, job_id, token=token, working_state=working_state, lease=lease,
                                max_attempts=max_attempts):
            return None
        job = service.get(session, job_id)
        note = f"attempt {job.attempts} of {max_attempts}" if job.attempts > 1 else ""
        repository.add_event(session, job, working_state, note)
    return token


def renew(db: Database, job_id: str, token: str, *, lease: float) -> bool:
    with db.session() as session:
        return repository.renew(session, job_id, token=token, lease=lease)


def finish(db: Database, job_id: str, token: str, apply: Callable[[Session, Job], None]) -> bool:
    """Run `apply` on the job if `token` still holds it; False (and nothing written) if it does not."""
    with db.session() as session:
        job = repository.held(session, job_id, token)
        if job is None:
            return False
        apply(session, job)
        return True


def succeed(db: Database, job_id: str, token: str, message: str = "",
            update: Callable[[Session, Job], None] | None = None) -> bool:
    def apply(session: Session, job: Job) -> None:
        if update is not None:
            update(session, job)
        service.transition(session, job, JobState.SUCCESS, message)

    return finish(db, job_id, token, apply)


def fail(db: Database, job_id: str, token: str, reason: str) -> bool:
    return finish(db, job_id, token, lambda session, job: service.fail(session, job, reason))


def note(db: Database, job_id: str, token: str, message: str) -> bool:
    """An event on a held job, its state unchanged (a compile's strategy starting or ending)."""
    return finish(db, job_id, token, lambda session, job: repository.add_event(session, job, JobState(job.state),
                                                                                message))
