"""Pipelines: submit, read, cancel. Everything a pipeline will need is checked here, before any job runs, so
a mistake in the spec costs a 400 with the fix, not a compile and a trip to the devices."""

from __future__ import annotations

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefarm import metrics
from edgefarm.options import OptionsError, ProfileOptions, RuntimeOptions
from edgefarm.wire import (CompileJobIn, JobState, Page, PipelineEvent, PipelineIn, PipelineJobs, PipelineOut,
                           PipelineState)
from edgefarm_gateway.datasets import service as datasets
from edgefarm_gateway.devices import service as devices
from edgefarm_gateway.errors import BadRequest, Conflict, NotFound
from edgefarm_gateway.jobs import service as jobs
from edgefarm_gateway.models import service as models
from edgefarm_gateway.orm import Dataset, Job, Model, Pipeline, new_id, utcnow
from edgefarm_gateway.registry.service import check_name
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.tokens.service import Principal

STAGE_COMPILING, STAGE_DEVICES, STAGE_DONE = "compiling", "measuring on devices", "done"


def to_out(pipeline: Pipeline) -> PipelineOut:
    return PipelineOut(id=pipeline.id, name=pipeline.name, state=pipeline.state, stage=pipeline.stage,
                       failure_reason=pipeline.failure_reason, spec=PipelineIn(**pipeline.spec),
                       jobs=PipelineJobs(**pipeline.jobs), report=pipeline.report, version=pipeline.version,
                       submitted_by=pipeline.owner_name, created_at=pipeline.created_at,
                       updated_at=pipeline.updated_at, finished_at=pipeline.finished_at,
                       events=[PipelineEvent(**e) for e in pipeline.events])


def get(session: Session, pipeline_id: str, *, lock: bool = False) -> Pipeline:
    """`lock`: hold the row until commit, so a change cannot interleave with the driver's."""
    pipeline = session.get(Pipeline, pipeline_id, with_for_update=lock)
    if pipeline is None:
        raise NotFound(f"no pipeline {pipeline_id}")
    return pipeline


def list_page(session: Session, *, name: str | None, state: PipelineState | None, offset: int,
              limit: int) -> Page[PipelineOut]:
    query = select(Pipeline)
    if name:
        query = query.where(Pipeline.name == name)
    if state:
        query = query.where(Pipeline.state == state.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Pipeline.created_at.desc(), Pipeline.id).offset(offset).limit(limit))
    return Page[PipelineOut](items=[to_out(p) for p in rows], total=total, offset=offset, limit=limit)


def note(pipeline: Pipeline, message: str) -> None:
    now = utcnow()
    pipeline.events = [*pipeline.events, {"at": now.isoformat(), "message": message}]
    pipeline.updated_at = now


def finish(session: Session, pipeline: Pipeline, state: PipelineState, message: str) -> None:
    """End the pipeline; jobs of it still running are cancelled (their results could change nothing now)."""
    if state != PipelineState.SUCCESS:
        pipeline.failure_reason = message
        for job in job_rows(session, pipeline).values():
            if not JobState(job.state).finished:
                jobs.transition(session, job, JobState.CANCELLED, f"pipeline {pipeline.id} ended: {message}")
    pipeline.state, pipeline.stage, pipeline.finished_at = state.value, STAGE_DONE, utcnow()
    note(pipeline, message)


def job_rows(session: Session, pipeline: Pipeline) -> dict[str, Job]:
    ids = PipelineJobs(**pipeline.jobs)
    wanted = [ids.compile, ids.reference, *ids.profile.values(), *ids.inference.values()]
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_([i for i in wanted if i])))}


def cancel(session: Session, pipeline_id: str) -> Pipeline:
    pipeline = get(session, pipeline_id, lock=True)
    if PipelineState(pipeline.state).finished:
        raise Conflict(f"pipeline {pipeline_id} is already {pipeline.state} and cannot be cancelled")
    finish(session, pipeline, PipelineState.CANCELLED, "cancelled by the user")
    return pipeline


def submit(session: Session, settings: Settings, celery: Celery, body: PipelineIn, user: Principal) -> Pipeline:
    check_name(body.name)
    model = models.get(session, body.model_id)
    if model.format not in ("onnx", "torchscript"):
        raise BadRequest(f"model {model.id} is {model.format}: a pipeline starts from the source model (ONNX or "
                         "TorchScript), which it compiles and runs in FP32 as the reference")
    _check_devices(session, settings, body)
    if not body.gates.given():
        raise BadRequest("gates: give at least one of max_metric_drop, min_metric, max_latency_ms, "
                         "max_model_size_mb, max_peak_memory_mb — without a gate nothing decides the release")
    for options, kind in ((body.profile_options, ProfileOptions), (body.inference_options, RuntimeOptions)):
        try:
            kind.parse(options)
        except OptionsError as exc:
            raise BadRequest(f"{'profile' if kind is ProfileOptions else 'inference'}_options: {exc}") from None
    evaluation = datasets.get(session, body.eval_dataset_id)
    count = _check_eval_inputs(model, body, evaluation)
    output = _check_metric(model, body)
    for field, dataset_id in (("ground_truth", body.ground_truth_dataset_id),
                              ("reference", body.reference_dataset_id)):
        if dataset_id:
            _check_outputs(field, datasets.get(session, dataset_id), output, count)

    compile_job = jobs.submit_compile(session, settings, celery, CompileJobIn(
        model_id=model.id, device=body.devices[0], name=body.name, input_specs=body.input_specs,
        options=body.compile_options, calibration_dataset_id=body.calibration_dataset_id), user.id)
    reference = None
    if body.reference_dataset_id is None:
        reference = jobs.submit_reference(session, celery, model=model, dataset=evaluation,
                                          input_specs=body.input_specs, name=f"{body.name} FP32 reference",
                                          owner_id=user.id).id
    pipeline = Pipeline(id=new_id("p"), name=body.name, state=PipelineState.RUNNING.value, stage=STAGE_COMPILING,
                        spec=body.model_dump(mode="json"),
                        jobs=PipelineJobs(compile=compile_job.id, reference=reference).model_dump(),
                        events=[], owner_id=user.id, owner_name=user.name)
    note(pipeline, f"submitted by {user.name}: compile job {compile_job.id}"
                   + (f", FP32 reference job {reference}" if reference else ", reference outputs supplied"))
    session.add(pipeline)
    session.flush()
    return pipeline


def _check_devices(session: Session, settings: Settings, body: PipelineIn) -> None:
    if not body.devices:
        raise BadRequest("devices: name at least one device pool to measure on, e.g. [{'name': 'Host CPU'}]")
    names = [d.name for d in body.devices]
    if "" in names or len(set(names)) != len(names):
        raise BadRequest(f"devices must be distinct, named pools (the report has one row per pool); got {names}")
    for selector in body.devices:
        devices.require_pool(session, settings, selector)


def _source_inputs(model: Model, body: PipelineIn) -> dict[str, dict]:
    if body.input_specs:
        return {name: {"shape": spec.shape, "dtype": spec.dtype} for name, spec in body.input_specs.items()}
    if model.format == "torchscript":
        raise BadRequest("a TorchScript model does not record its inputs: pass input_specs, e.g. "
                         "input_specs={'image': ((1, 3, 224, 224), 'float32')}")
    return {t["name"]: t for t in model.inputs}


def _check_eval_inputs(model: Model, body: PipelineIn, dataset: Dataset) -> int:
    jobs.check_dataset_inputs(_source_inputs(model, body), dataset, "eval inputs")
    return next(iter(dataset.entries.values()))["count"]  # the same for every entry (checked at upload)


def _check_metric(model: Model, body: PipelineIn) -> str:
    """The output the metric judges; checks the metric's name and parameters."""
    try:
        metrics.check(body.metric.name, body.metric.params)
    except ValueError as exc:
        raise BadRequest(f"metric: {exc}") from None
    if body.metric.name == "psnr" and body.gates.max_metric_drop is not None and not body.ground_truth_dataset_id:
        # Without ground truth the FP32 outputs are the truth, and their PSNR against themselves is infinite:
        # every device would "drop" by infinity and fail after all the work.
        raise BadRequest("gates.max_metric_drop with metric psnr needs ground_truth (FP32 against itself has an "
                         "infinite PSNR); without it, gate on the device's PSNR against FP32: min_metric, e.g. 40")
    outputs = [t["name"] for t in model.outputs]
    if body.metric.output is None:
        if len(outputs) != 1:
            raise BadRequest("metric.output: name the output to judge; "
                             + (f"the model has {', '.join(outputs)}" if outputs else
                                "a TorchScript model does not record its output names (ONNX export names them "
                                "output_0, output_1, …)"))
        return outputs[0]
    if outputs and body.metric.output not in outputs:
        raise BadRequest(f"metric.output {body.metric.output!r} is not an output of the model; it has "
                         f"{', '.join(outputs)}")
    return body.metric.output


def _check_outputs(field: str, dataset: Dataset, output: str, count: int) -> None:
    if output not in dataset.entries:
        raise BadRequest(f"{field} must hold the judged output {output!r} (named as the model's output); it has "
                         f"{', '.join(dataset.entries) or 'nothing'}")
    got = dataset.entries[output]["count"]
    if got != count:
        raise BadRequest(f"{field} has {got} sample(s) of {output!r}; the eval inputs have {count}: one per input")
