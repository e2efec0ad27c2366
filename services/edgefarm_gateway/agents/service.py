"""The agent side of jobs: hand a queued job to a free device, and take back its progress and results.

Every call after the lease carries the lease token; only the job's current holder is heard. A result sent
twice with the same token is accepted once and acknowledged twice (agents retry on network errors).
"""

from __future__ import annotations

import json
import secrets
from typing import BinaryIO

from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgefarm.wire import (CompileResult, DatasetEntry, DeviceSelector, InferenceResult, JobState, JobType, Lease,
                           Profile, ProgressIn)
from edgefarm_gateway.datasets import service as datasets
from edgefarm_gateway.devices.selection import matches
from edgefarm_gateway.errors import BadRequest, Conflict, NotFound
from edgefarm_gateway.jobs import repository, service as jobs
from edgefarm_gateway.jobs.repository import DEVICE_JOB_TYPES
from edgefarm_gateway.models import service as models
from edgefarm_gateway.orm import Agent, Dataset, Device, Job
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.storage import ArtifactStore

WORKING_STATE = {JobType.PROFILE.value: JobState.MEASURING_PERFORMANCE,
                 JobType.INFERENCE.value: JobState.RUNNING_INFERENCE}


def lease(session: Session, settings: Settings, agent: Agent, device_ids: list[str]) -> Lease | None:
    """Give the oldest queued job that one of these free devices can run to that device, or None."""
    free = [d for d in agent.devices if d.id in device_ids and d.current_job_id is None and d.retired_at is None]
    if not free:
        return None
    for job in repository.queued_for_pools(session, DEVICE_JOB_TYPES, sorted({d.name for d in free})):
        selector = DeviceSelector(**job.device)
        device = next((d for d in free if matches(selector, d.name, d.os, d.attributes)), None)
        if device is None:
            continue
        token = secrets.token_hex(16)
        if not repository.claim(session, job.id, token=token, working_state=JobState.PROVISIONING_DEVICE,
                                lease=settings.device_lease_seconds, max_attempts=settings.device_max_attempts):
            continue  # another agent won it a moment ago
        session.refresh(job)
        job.device_id, device.current_job_id = device.id, job.id
        repository.add_event(session, job, JobState.PROVISIONING_DEVICE, f"leased to {device.name} "
                                                                         f"({device.serial} on {agent.name})")
        return _lease_of(session, job, token)
    return None


def _lease_of(session: Session, job: Job, token: str) -> Lease:
    model = models.get(session, job.model_id)
    producer = session.get(Job, model.producer_job_id) if model.producer_job_id else None
    dataset = session.get(Dataset, job.input_dataset_id) if job.input_dataset_id else None
    return Lease(job_id=job.id, job_type=job.type, device_id=job.device_id, lease_token=token,
                 lease_expires_at=job.lease_expires_at, options=job.options, model=models.to_out(model),
                 compile_result=CompileResult.model_validate(producer.result) if producer and producer.result
                 else None,
                 input_dataset=datasets.to_out(dataset) if dataset else None)


def held(session: Session, token_id: str, job_id: str, token: str) -> Job:
    """The job, if this lease token still holds it and the device is one of this agent token's."""
    job = repository.held(session, job_id, token)
    device = session.get(Device, job.device_id) if job is not None and job.device_id else None
    if job is None or device is None or device.agent.token_id != token_id:
        raise Conflict(f"the lease on job {job_id} is no longer this agent's (cancelled, expired or given to "
                       "another device): drop the job")
    return job


def progress(session: Session, settings: Settings, token_id: str, job_id: str, body: ProgressIn) -> None:
    job = held(session, token_id, job_id, body.lease_token)
    repository.renew(session, job_id, token=body.lease_token, lease=settings.device_lease_seconds)
    if body.state and body.state != job.state:
        if JobState(body.state) != WORKING_STATE[job.type]:
            raise BadRequest(f"a {job.type} job cannot be {body.state}")
        jobs.transition(session, job, JobState(body.state), body.message)


def _already_finished(session: Session, token_id: str, job_id: str, token: str) -> bool:
    """A result sent again by the agent that finished the job (its retry after a lost answer) is acknowledged;
    to anyone else the finished job's lease token is dead, and `held` refuses it."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.claim_token != token or job.state not in (JobState.SUCCESS.value, JobState.FAILED.value):
        return False
    device = session.get(Device, job.device_id) if job.device_id else None
    return device is not None and device.agent.token_id == token_id


def record_profile(session: Session, token_id: str, job_id: str, token: str, profile_json: str) -> None:
    if _already_finished(session, token_id, job_id, token):
        return
    job = held(session, token_id, job_id, token)
    if job.type != JobType.PROFILE.value:
        raise BadRequest(f"job {job_id} is a {job.type} job; send outputs, not a profile")
    try:
        profile = Profile.model_validate_json(profile_json)
    except ValidationError as exc:
        raise BadRequest(f"the profile does not have the expected fields: {exc}") from None
    job.result = profile.model_dump(mode="json")
    median = profile.execution_summary.estimated_inference_time / 1000
    jobs.transition(session, job, JobState.SUCCESS, f"median {median:.3f} ms over "
                                                     f"{profile.execution_summary.iterations} iterations")


def record_inference(session: Session, store: ArtifactStore, settings: Settings, token_id: str, job_id: str,
                     token: str, outputs: BinaryIO, result_json: str) -> None:
    if _already_finished(session, token_id, job_id, token):
        return
    job = held(session, token_id, job_id, token)
    if job.type != JobType.INFERENCE.value:
        raise BadRequest(f"job {job_id} is a {job.type} job; send a profile, not outputs")
    try:
        partial = json.loads(result_json or "{}")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"result is not JSON: {exc}") from None
    dataset, _ = datasets.add(session, store, outputs, name=f"{job.name} outputs",
                              max_bytes=settings.max_dataset_bytes, owner_id=job.owner_id)
    entries = {k: DatasetEntry(**v) for k, v in dataset.entries.items()}
    try:
        result = InferenceResult(output_dataset_id=dataset.id, outputs=entries, **partial)
    except (ValidationError, TypeError) as exc:
        raise BadRequest(f"result does not have the expected fields: {exc}") from None
    job.result = result.model_dump(mode="json")
    jobs.transition(session, job, JobState.SUCCESS, f"{next(iter(entries.values())).count} sample(s) in "
                                                     f"{result.seconds:.2f} s")


def record_failure(session: Session, token_id: str, job_id: str, token: str, reason: str, log: str) -> None:
    if _already_finished(session, token_id, job_id, token):
        return
    job = held(session, token_id, job_id, token)
    device = session.get(Device, job.device_id)
    where = f"on {device.name} ({device.serial})" if device else "on the device"
    jobs.fail(session, job, f"{reason.strip()} [{where}]")
    if log:
        job.result = {"log": log.replace("\x00", "")[-20000:]}  # PostgreSQL text holds no NUL
