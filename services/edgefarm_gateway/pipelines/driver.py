"""Moves pipelines forward from the states of their jobs; every gateway runs `advance_all` periodically.

Each pass looks at the RUNNING pipelines, one transaction each, the row locked so two gateways never
advance the same pipeline twice:

    compile SUCCESS, no device jobs yet   → a profile and an inference job on each device pool
    every job SUCCESS                      → evaluate (outside the transaction), gate, register (or not), finish
    any job FAILED or CANCELLED            → the pipeline FAILS, naming the job and its reason

All of it is derived from rows, so a gateway that restarts mid-pipeline carries on where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from edgefarm.wire import InferenceJobIn, JobState, PipelineIn, PipelineJobs, PipelineState, ProfileJobIn
from edgefarm_gateway.db import Database
from edgefarm_gateway.errors import FarmError
from edgefarm_gateway.jobs import service as jobs
from edgefarm_gateway.orm import Job, Pipeline
from edgefarm_gateway.pipelines import evaluation
from edgefarm_gateway.pipelines.service import STAGE_DEVICES, finish, job_rows, note
from edgefarm_gateway.registry import service as registry
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.storage import ArtifactStore
from edgefarm_gateway.tokens.service import Principal

log = logging.getLogger(__name__)

Notify = Callable[[], None]


def advance_all(db: Database, store: ArtifactStore, settings: Settings, notify: Notify) -> int:
    """One pass over the running pipelines; returns how many changed."""
    with db.session() as session:
        running = list(session.scalars(select(Pipeline.id).where(Pipeline.state == PipelineState.RUNNING.value)))
    changed = 0
    for pipeline_id in running:
        try:
            changed += _step(db, store, settings, notify, pipeline_id)
        except (OperationalError, InterfaceError) as exc:
            # The database was busy or the connection dropped: the step's transaction rolled back, nothing was
            # half-done, and the next pass tries again. Failing the pipeline here would fail a good model for
            # a lock timeout.
            log.warning("pipeline %s: database error, retried on the next pass: %s", pipeline_id, exc)
        except Exception as exc:  # a bug must end this pipeline with a reason, not stall it or the others
            log.exception("pipeline %s could not advance", pipeline_id)
            with db.session() as session:
                pipeline = session.get(Pipeline, pipeline_id)
                if pipeline is not None and pipeline.state == PipelineState.RUNNING.value:
                    finish(session, pipeline, PipelineState.FAILED,
                           f"internal error in the gateway: {type(exc).__name__}: {exc}")
    return changed


def _step(db: Database, store: ArtifactStore, settings: Settings, notify: Notify, pipeline_id: str) -> bool:
    with db.session() as session:
        pipeline = _running(session, pipeline_id)
        if pipeline is None:
            return False
        before = (pipeline.state, pipeline.stage)
        evidence = advance(session, store, settings, notify, pipeline)
        changed = (pipeline.state, pipeline.stage) != before
    if evidence is None:
        return changed
    # Outside any transaction: loading and comparing every output can take seconds.
    try:
        verdict: dict | evaluation.EvaluationError = evaluation.build_report(evidence)
    except evaluation.EvaluationError as exc:
        verdict = exc
    with db.session() as session:
        pipeline = _running(session, pipeline_id)  # None: cancelled meanwhile, or another gateway concluded it
        if pipeline is None:
            return False
        conclude(session, pipeline, evidence, verdict)
        return True


def _running(session: Session, pipeline_id: str) -> Pipeline | None:
    """The pipeline if it is still RUNNING, its row locked so two gateways never advance it at once."""
    return session.scalar(select(Pipeline).where(
        Pipeline.id == pipeline_id, Pipeline.state == PipelineState.RUNNING.value).with_for_update(skip_locked=True))


def advance(session: Session, store: ArtifactStore, settings: Settings, notify: Notify,
            pipeline: Pipeline) -> evaluation.Evidence | None:
    """Moves the pipeline on from its jobs' states; returns the evidence to judge once every job succeeded."""
    ids = PipelineJobs(**pipeline.jobs)
    rows = job_rows(session, pipeline)
    for job in rows.values():
        if job.state in (JobState.FAILED.value, JobState.CANCELLED.value):
            why = job.failure_reason or "cancelled outside the pipeline; submit the pipeline again to rerun it"
            finish(session, pipeline, PipelineState.FAILED, f"{_describe(job, ids)} {job.state.lower()}: {why}")
            return None
    if rows[ids.compile].state != JobState.SUCCESS.value:
        return None
    spec = PipelineIn(**pipeline.spec)
    if not ids.profile:
        try:
            with session.begin_nested():  # all the device jobs, or none
                _submit_device_jobs(session, settings, notify, pipeline, spec, rows[ids.compile])
        except FarmError as exc:  # e.g. the pool's devices were retired since the pipeline was submitted
            finish(session, pipeline, PipelineState.FAILED, f"cannot start the device jobs: {exc.detail}")
        return None
    if any(job.state != JobState.SUCCESS.value for job in rows.values()):
        return None
    try:
        return evaluation.gather(session, store, spec, ids, rows)
    except evaluation.EvaluationError as exc:
        finish(session, pipeline, PipelineState.FAILED, f"cannot compare the outputs: {exc}")
        return None


def conclude(session: Session, pipeline: Pipeline, evidence: evaluation.Evidence,
             verdict: dict | evaluation.EvaluationError) -> None:
    """Registers the version when every gate passed; otherwise FAILED with the gates (or the comparison) named."""
    if isinstance(verdict, evaluation.EvaluationError):
        finish(session, pipeline, PipelineState.FAILED, f"cannot compare the outputs: {verdict}")
        return
    pipeline.report = verdict
    if not verdict["passed"]:
        finish(session, pipeline, PipelineState.FAILED,
               f"gate failed, nothing registered: {evaluation.failed_gates(verdict)}")
        return
    spec, ids = evidence.spec, evidence.ids
    targets = [{"device": d.name, "model_id": evidence.target["id"], "compile_job_id": ids.compile,
                "profile_job_id": ids.profile[d.name], "inference_job_id": ids.inference[d.name]}
               for d in spec.devices]
    version = registry.register_version(
        session, name=spec.name, source_model_id=spec.model_id, targets=targets,
        evidence={"pipeline_id": pipeline.id, **verdict}, pipeline_id=pipeline.id,
        submitted_by=Principal(pipeline.owner_id, pipeline.owner_name, "user"))
    pipeline.version = version.number
    finish(session, pipeline, PipelineState.SUCCESS, f"every gate passed: registered {spec.name} v{version.number}")


def _submit_device_jobs(session: Session, settings: Settings, notify: Notify, pipeline: Pipeline, spec: PipelineIn,
                        compiled: Job) -> None:
    ids = PipelineJobs(**pipeline.jobs)
    for selector in spec.devices:
        name = f"{spec.name} on {selector.name}"
        ids.profile[selector.name] = jobs.submit_profile(session, settings, notify, ProfileJobIn(
            model_id=compiled.target_model_id, device=selector, name=name, options=spec.profile_options,
            input_dataset_id=spec.eval_dataset_id), pipeline.owner_id).id
        ids.inference[selector.name] = jobs.submit_inference(session, settings, notify, InferenceJobIn(
            model_id=compiled.target_model_id, device=selector, name=name, options=spec.inference_options,
            input_dataset_id=spec.eval_dataset_id), pipeline.owner_id).id
    pipeline.jobs = ids.model_dump()
    pipeline.stage = STAGE_DEVICES
    note(pipeline, f"compiled by job {compiled.id}; profile and inference jobs on "
                   f"{', '.join(d.name for d in spec.devices)}")


def _describe(job: Job, ids: PipelineJobs) -> str:
    device = next((name for name, job_id in {**ids.profile, **ids.inference}.items() if job_id == job.id), None)
    return f"{job.type} job {job.id}" + (f" on {device}" if device else "")
