"""Keeps the database's promise that no submitted job is lost, whatever happens to brokers and workers.

- A worker job (compile, or a pipeline's FP32 reference) whose worker stopped renewing its lease (crashed,
  killed, machine gone) goes back to CREATED and is sent again, up to a bounded number of attempts; then
  it FAILS saying so.
- A profile or inference job whose agent stopped renewing its lease goes back to the queue for any device
  of its pool, up to a bounded number of attempts; then it FAILS saying the device was lost.
- A CREATED worker job nobody claimed for a while is sent to the broker again (the message was lost,
  or the broker was down when the job was submitted).
Every gateway may run it; claims make duplicate sends harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from edgefarm import wire
from edgefarm.wire import JobState
from edgefarm_gateway import queue
from edgefarm_gateway.db import Database, after_commit
from edgefarm_gateway.jobs import repository, service
from edgefarm_gateway.jobs.repository import DEVICE_JOB_TYPES
from edgefarm_gateway.orm import utcnow
from edgefarm_gateway.settings import Settings

log = logging.getLogger(__name__)


def reconcile_once(db: Database, celery: Celery, settings: Settings) -> int:
    """One pass; returns how many jobs it re-sent or failed."""
    changed = 0
    worker_types = tuple(queue.WORKER_TASKS)
    with db.session() as session:
        for job in repository.expired_leases(session, worker_types):
            changed += 1
            if job.attempts >= settings.compile_max_attempts:
                service.fail(session, job, _workers_lost(job))
                continue
            job.claim_token = job.lease_expires_at = None
            job.enqueued_at = utcnow()
            service.transition(session, job, JobState.CREATED, "the worker stopped renewing its lease; requeued")
            after_commit(session, lambda job_id=job.id, job_type=job.type: queue.send(celery, job_id, job_type))
        for job in repository.expired_leases(session, DEVICE_JOB_TYPES):
            changed += 1
            _release_lost_device_job(session, settings, job)
        now = utcnow()
        for job in repository.unclaimed_since(session, worker_types,
                                              now - timedelta(seconds=settings.requeue_after_seconds)):
            queued_at = max((e.at for e in job.events if e.state == JobState.CREATED.value), default=job.created_at)
            if not resend_due(queued_at, job.enqueued_at, now, settings.requeue_after_seconds):
                continue
            changed += 1
            job.enqueued_at = utcnow()
            log.info("%s job %s was not picked up; sending it again", job.type, job.id)
            after_commit(session, lambda job_id=job.id, job_type=job.type: queue.send(celery, job_id, job_type))
    return changed


# The longest wait between two sends of one unclaimed job: a farm with no worker for a day gets 30 messages per
# job from its reconciler, not one every 30 s.
MAX_RESEND_SECONDS = 3600.0


def resend_due(queued_at, enqueued_at, now, first_after: float) -> bool:
    """Whether a job waiting since `queued_at` (submitted or requeued), last sent at `enqueued_at`, is sent again
    now. The waits double (30 s, 30 s, 60 s, 120 s … up to an hour): a lost message is re-sent soon, while a farm
    whose workers are all down is not flooded with duplicates that every worker would later receive and drop."""
    if enqueued_at is None:
        return True
    waited = (now - enqueued_at).total_seconds()
    wait = min(MAX_RESEND_SECONDS, max(first_after, (enqueued_at - queued_at).total_seconds()))
    return waited >= wait


def _workers_lost(job) -> str:
    message = (f"the worker was lost {job.attempts} times while running this {job.type} job (killed, out of "
               "memory, or crashed by the converter or runtime)")
    deaths = wire.strategy_deaths([e.message for e in job.events])
    if deaths:
        message += "; it died during " + ", ".join(
            f"strategy {name} ({count} time{'s' if count > 1 else ''})" for name, count in deaths.items())
    return message + "; check the worker logs, then submit again"


def _release_lost_device_job(session, settings: Settings, job) -> None:
    if job.attempts >= settings.device_max_attempts:
        service.fail(session, job, f"the device was lost {job.attempts} times while running this job (its agent "
                                   "stopped, crashed or lost the network); check the agent, then submit again")
        return
    service.release_device(session, job)
    job.claim_token = job.lease_expires_at = None
    job.device_id = None
    service.transition(session, job, JobState.CREATED, "the device's agent stopped renewing its lease; requeued")
