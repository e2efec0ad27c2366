"""Every query on jobs. Claims and lease changes are conditional UPDATEs so concurrent holders cannot race."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from edgefarm.wire import JobState, JobType
from edgefarm_gateway.orm import Job, JobEvent, Model, utcnow

DEVICE_JOB_TYPES = (JobType.PROFILE.value, JobType.INFERENCE.value)  # the rest run on workers
ACTIVE = (JobState.CREATED, JobState.OPTIMIZING_MODEL, JobState.PROVISIONING_DEVICE,
          JobState.MEASURING_PERFORMANCE, JobState.RUNNING_INFERENCE)


def add_event(session: Session, job: Job, state: JobState, message: str = "", at: datetime | None = None) -> None:
    event = JobEvent(job_id=job.id, state=state.value, message=message, at=at or utcnow())
    session.add(event)
    job.events.append(event)


def page(session: Session, *, type: str | None, state: str | None, name: str | None, model_id: str | None,
         offset: int, limit: int, device_id: str | None = None) -> tuple[list[Job], int]:
    query = select(Job)
    if device_id:
        query = query.where(Job.device_id == device_id)
    if type:
        query = query.where(Job.type == type)
    if state:
        query = query.where(Job.state == state)
    if name:
        query = query.where(Job.name.contains(name))
    if model_id:
        query = query.where(or_(Job.model_id == model_id, Job.target_model_id == model_id))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit))
    return list(rows), total


def cached_compile(session: Session, cache_key: str) -> Job | None:
    return session.scalar(
        select(Job).where(Job.cache_key == cache_key, Job.state == JobState.SUCCESS.value,
                          Job.target_model_id.is_not(None)).order_by(Job.finished_at).limit(1))


def winning_strategy(session: Session, job: Job) -> str | None:
    """The conversion strategy of the latest successful compile of the same model bytes with the same options."""
    model_sha = select(Model.sha256).where(Model.id == job.model_id).scalar_subquery()
    earlier = session.scalar(
        select(Job).join(Model, Model.id == Job.model_id)
        .where(Job.type == JobType.COMPILE.value, Job.state == JobState.SUCCESS.value, Job.options == job.options,
               Model.sha256 == model_sha, Job.cache_hit.is_(False))
        .order_by(Job.finished_at.desc()).limit(1))
    return ((earlier.result or {}).get("strategy") or None) if earlier is not None else None


def claim(session: Session, job_id: str, *, token: str, working_state: JobState, lease: float,
          max_attempts: int) -> bool:
    """Take a job that is waiting, or whose previous holder's lease ran out. True if this caller won it."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts < max_attempts,
               or_(Job.state == JobState.CREATED.value,
                   (Job.state == working_state.value) & (Job.lease_expires_at < now)))
        .values(state=working_state.value, claim_token=token, lease_expires_at=now + timedelta(seconds=lease),
                attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, now), updated_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def renew(session: Session, job_id: str, *, token: str, lease: float) -> bool:
    now = utcnow()
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.claim_token == token, Job.state.in_([s.value for s in ACTIVE]))
        .values(lease_expires_at=now + timedelta(seconds=lease), updated_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def held(session: Session, job_id: str, token: str) -> Job | None:
    """The job, locked for update, if `token` still holds it and it is still running."""
    return session.scalar(
        select(Job).where(Job.id == job_id, Job.claim_token == token, Job.state.in_([s.value for s in ACTIVE]))
        .with_for_update())


def queued(session: Session, types: tuple[str, ...], limit: int = 200) -> list[Job]:
    """Waiting jobs of these types, oldest first: the order devices serve them in."""
    return list(session.scalars(select(Job).where(Job.state == JobState.CREATED.value, Job.type.in_(types))
                                .order_by(Job.created_at, Job.id).limit(limit)))


def queued_for_pools(session: Session, types: tuple[str, ...], pools: list[str], batch: int = 200) -> Iterator[Job]:
    """Waiting jobs of these types that name one of these pools or none, oldest first, read a batch at a time
    for as long as the caller looks: jobs for pools nobody here serves are never read, and jobs whose os or
    attributes no free device has cannot hide the ones behind them."""
    pool = Job.device["name"].as_string()
    query = (select(Job).where(Job.state == JobState.CREATED.value, Job.type.in_(types),
                               or_(pool.in_(pools), pool == "", pool.is_(None)))
             .order_by(Job.created_at, Job.id).limit(batch))
    after: tuple[datetime, str] | None = None
    while True:
        batch_query = query if after is None else query.where(
            or_(Job.created_at > after[0], (Job.created_at == after[0]) & (Job.id > after[1])))
        rows = list(session.scalars(batch_query))
        yield from rows
        if len(rows) < batch:
            return
        after = (rows[-1].created_at, rows[-1].id)


def expired_leases(session: Session, types: tuple[str, ...]) -> list[Job]:
    """Jobs of these types whose holder stopped renewing its lease."""
    working = [s.value for s in ACTIVE if s != JobState.CREATED]
    return list(session.scalars(
        select(Job).where(Job.type.in_(types), Job.state.in_(working), Job.lease_expires_at < utcnow())
        .with_for_update(skip_locked=True)))


def unclaimed_since(session: Session, types: tuple[str, ...], before: datetime) -> list[Job]:
    return list(session.scalars(
        select(Job).where(Job.type.in_(types), Job.state == JobState.CREATED.value,
                          or_(Job.enqueued_at.is_(None), Job.enqueued_at < before)).with_for_update(skip_locked=True)))
