"""Jobs: submit, read, cancel, and the state changes the holders of a job (workers, agents) report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial

from celery import Celery
from sqlalchemy.orm import Session

from edgefarm.options import CompileOptions, OptionsError, ProfileOptions, RuntimeOptions
from edgefarm.wire import (CompileJobIn, DeviceSelector, InferenceJobIn, JobEvent as JobEventOut, JobOut, JobState,
                           JobType, Page, ProfileJobIn, TensorSpec)
from edgefarm_gateway import queue
from edgefarm_gateway.datasets import service as datasets
from edgefarm_gateway.db import after_commit
from edgefarm_gateway.errors import BadRequest, Conflict, NotFound
from edgefarm_gateway.jobs import repository
from edgefarm_gateway.models import service as models
from edgefarm_gateway.orm import Dataset, Device, Job, Model, new_id, utcnow


def to_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id, type=job.type, name=job.name, state=job.state, failure_reason=job.failure_reason,
        model_id=job.model_id, target_model_id=job.target_model_id, device=job.device, options=job.options,
        input_specs=job.input_specs, calibration_dataset_id=job.calibration_dataset_id, cache_hit=job.cache_hit,
        input_dataset_id=job.input_dataset_id, device_id=job.device_id,
        attempts=job.attempts, result=job.result, created_at=job.created_at, updated_at=job.updated_at,
        started_at=job.started_at, finished_at=job.finished_at,
        events=[JobEventOut(state=e.state, at=e.at, message=e.message) for e in job.events])


def get(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_page(session: Session, *, type: JobType | None, state: JobState | None, name: str | None,
              model_id: str | None, offset: int, limit: int, device_id: str | None = None) -> Page[JobOut]:
    rows, total = repository.page(session, type=type.value if type else None, state=state.value if state else None,
                                  name=name, model_id=model_id, device_id=device_id, offset=offset, limit=limit)
    return Page[JobOut](items=[to_out(j) for j in rows], total=total, offset=offset, limit=limit)


def queue_positions(session: Session) -> dict[str, int]:
    """Where each waiting job stands (1 = next): worker jobs in the workers' queue, device jobs in the devices'."""
    positions: dict[str, int] = {}
    for types in (tuple(queue.WORKER_TASKS), repository.DEVICE_JOB_TYPES):
        positions.update({job.id: i for i, job in enumerate(repository.queued(session, types, limit=1000), 1)})
    return positions


def transition(session: Session, job: Job, state: JobState, message: str = "") -> None:
    now = utcnow()
    job.state, job.updated_at = state.value, now
    if state.finished:
        release_device(session, job)
        # The claim token stays: a holder retrying its result is recognised, and nobody else can finish the job.
        job.finished_at, job.lease_expires_at = now, None
    repository.add_event(session, job, state, message, at=now)


def release_device(session: Session, job: Job) -> None:
    if job.device_id:
        device = session.get(Device, job.device_id)
        if device is not None and device.current_job_id == job.id:
            device.current_job_id = None


def fail(session: Session, job: Job, reason: str) -> None:
    job.failure_reason = reason
    transition(session, job, JobState.FAILED, reason)


def cancel(session: Session, job_id: str) -> Job:
    job = get(session, job_id)
    if JobState(job.state).finished:
        raise Conflict(f"job {job_id} is already {job.state} and cannot be cancelled")
    transition(session, job, JobState.CANCELLED, "cancelled by the user")
    return job


# --- compile jobs ------------------------------------------------------------------------------------------


def fits(declared: list, given: list) -> bool:
    """A concrete shape fits a declared one: same rank, equal wherever the declared dimension is fixed."""
    return len(declared) == len(given) and all(
        not (isinstance(d, int) and d > 0) or d == g for d, g in zip(declared, given))


def _check_specs(model: Model, specs: dict[str, TensorSpec] | None) -> None:
    if model.format == "torchscript":
        if not specs:
            raise BadRequest("a TorchScript model does not record its inputs: pass input_specs, e.g. "
                             "input_specs={'image': ((1, 3, 224, 224), 'float32')}")
        return
    if specs is None:
        return
    known = {t["name"]: t for t in model.inputs}
    unknown = [n for n in specs if n not in known]
    if unknown:
        raise BadRequest(f"input_specs name {', '.join(unknown)}, which the model does not have; "
                         f"its inputs are {', '.join(known)}")
    for name, spec in specs.items():
        declared = known[name]["shape"]
        if not fits(declared, spec.shape):
            raise BadRequest(f"input_specs gives {name} the shape {tuple(spec.shape)}, but the model declares "
                             f"{tuple(declared)}")


def _check_samples(model: Model, specs: dict[str, TensorSpec] | None, dataset: Dataset, purpose: str) -> None:
    """Calibration or verification samples: one entry per model input, each sample shaped like it."""
    inputs = ({n: (s.shape, s.dtype) for n, s in specs.items()} if specs
              else {t["name"]: (t["shape"], t["dtype"]) for t in model.inputs})
    missing = [n for n in inputs if n not in dataset.entries]
    extra = [n for n in dataset.entries if n not in inputs]
    if missing or extra:
        raise BadRequest(f"{purpose} data must hold one entry per model input ({', '.join(inputs)}); "
                         f"missing: {', '.join(missing) or 'none'}, unknown: {', '.join(extra) or 'none'}")
    for name, (shape, dtype) in inputs.items():
        got = dataset.entries[name]
        if not fits(shape, got["shape"]):
            raise BadRequest(f"{purpose} samples for {name} have shape {tuple(got['shape'])}; "
                             f"the input is {tuple(shape)}")
        if got["dtype"] != dtype:
            raise BadRequest(f"{purpose} samples for {name} are {got['dtype']}; the input takes {dtype} "
                             f"(convert with array.astype('{dtype}') before uploading)")


def _compile_target(session: Session, settings, selector: DeviceSelector) -> str:
    """A compile for a pool the farm has never seen is a typo caught now, not a model compiled for nothing. The
    target depends only on the options, so a compile that names no device is allowed and says so."""
    from edgefarm_gateway.devices import service as devices

    if not (selector.name or selector.os or selector.attributes):
        return "for no particular device (the target depends only on the options)"
    devices.require_pool(session, settings, selector)
    return f"for {selector.name or 'any device'}" + (f" ({selector.os})" if selector.os else "")


def _cache_key(model: Model, options: CompileOptions, specs: dict[str, TensorSpec] | None,
               dataset: Dataset | None, verification: Dataset | None) -> str:
    material = {"model": model.sha256, "options": options.canonical(),
                "specs": {k: v.model_dump() for k, v in (specs or {}).items()},
                "calibration": dataset.sha256 if dataset else None}
    if verification is not None:  # only when given, so earlier jobs' keys stay valid
        material["verification"] = verification.sha256
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def submit_compile(session: Session, settings, celery: Celery, body: CompileJobIn, owner_id: str) -> Job:
    model = models.get(session, body.model_id)
    if model.format == "tflite":
        raise BadRequest(f"model {model.id} is already a TFLite model: profile it or run inference on it directly")
    try:
        options = CompileOptions.parse(body.options)
    except OptionsError as exc:
        raise BadRequest(f"options: {exc}") from None
    _check_specs(model, body.input_specs)
    if options.output_names and model.outputs:
        known = [t["name"] for t in model.outputs]
        unknown = [n for n in options.output_names if n not in known]
        if unknown:
            raise BadRequest(f"--output_names: the model has no output {', '.join(unknown)}; "
                             f"its outputs are {', '.join(known)}")
    dataset = datasets.get(session, body.calibration_dataset_id) if body.calibration_dataset_id else None
    if options.needs_calibration and dataset is None:
        raise BadRequest(f"--quantize_full_type {options.quantize_full_type} needs calibration data: pass "
                         "calibration_data={'<input name>': [sample, ...]} (a few hundred representative samples)")
    if dataset is not None:
        _check_samples(model, body.input_specs, dataset, "calibration")
    checks = datasets.get(session, body.verification_dataset_id) if body.verification_dataset_id else None
    if checks is not None:
        _check_samples(model, body.input_specs, checks, "verification")
    target = _compile_target(session, settings, body.device)

    key = _cache_key(model, options, body.input_specs, dataset, checks)
    job = Job(id=new_id("j"), type=JobType.COMPILE.value, name=body.name or model.name,
              state=JobState.CREATED.value, model_id=model.id, device=body.device.model_dump(),
              options=body.options, input_specs={k: v.model_dump() for k, v in (body.input_specs or {}).items()}
              or None, calibration_dataset_id=dataset.id if dataset else None,
              input_dataset_id=checks.id if checks else None, cache_key=key, owner_id=owner_id)
    session.add(job)
    repository.add_event(session, job, JobState.CREATED, f"submitted: {target}")
    cached = repository.cached_compile(session, key)
    if cached is not None:
        job.target_model_id, job.result, job.cache_hit = cached.target_model_id, cached.result, True
        job.started_at = utcnow()
        transition(session, job, JobState.SUCCESS, f"same model, specs, options and calibration as job {cached.id}: "
                                                   "its target model is reused")
    else:
        job.enqueued_at = utcnow()
        after_commit(session, partial(queue.send, celery, job.id, job.type))
    session.flush()
    return job


def submit_reference(session: Session, celery: Celery, *, model: Model, dataset: Dataset,
                     input_specs: dict[str, TensorSpec] | None, name: str, owner_id: str) -> Job:
    """The FP32 outputs of a source model on a dataset, computed by a worker (a pipeline's reference)."""
    job = Job(id=new_id("j"), type=JobType.REFERENCE.value, name=name, state=JobState.CREATED.value,
              model_id=model.id, input_dataset_id=dataset.id, enqueued_at=utcnow(), owner_id=owner_id,
              input_specs={k: v.model_dump() for k, v in (input_specs or {}).items()} or None)
    session.add(job)
    repository.add_event(session, job, JobState.CREATED, "queued for a worker (FP32 reference)")
    session.flush()
    after_commit(session, partial(queue.send, celery, job.id, job.type))
    return job


# --- profile and inference jobs -----------------------------------------------------------------------------


def source_io(session: Session, model: Model) -> tuple[list[dict], list[dict]]:
    """A compiled target's inputs and outputs in its source model's terms (what users feed and read)."""
    if model.producer_job_id:
        producer = session.get(Job, model.producer_job_id)
        if producer is not None and producer.result:
            return producer.result["source_inputs"], producer.result["source_outputs"]
    return model.inputs, model.outputs


def _check_inputs(session: Session, model: Model, dataset: Dataset) -> None:
    inputs, _ = source_io(session, model)
    check_dataset_inputs({t["name"]: t for t in inputs}, dataset, "inputs")


def check_dataset_inputs(expected: dict[str, dict], dataset: Dataset, what: str) -> None:
    """The dataset holds exactly the model's inputs, each sample shaped and typed as the input takes it."""
    missing = [n for n in expected if n not in dataset.entries]
    unknown = [n for n in dataset.entries if n not in expected]
    if missing or unknown:
        raise BadRequest(f"{what} must be named as the model's inputs ({', '.join(expected)}); "
                         f"missing: {', '.join(missing) or 'none'}, unknown: {', '.join(unknown) or 'none'}")
    for name, tensor in expected.items():
        entry = dataset.entries[name]
        shape = tensor["shape"]
        if not fits(shape, entry["shape"]):
            raise BadRequest(f"{what} {name}: each sample must have shape {tuple(shape)}; got "
                             f"{tuple(entry['shape'])}")
        if entry["dtype"] != tensor["dtype"]:
            raise BadRequest(f"{what} {name}: the model takes {tensor['dtype']}; got {entry['dtype']} "
                             f"(convert with array.astype('{tensor['dtype']}'))")


def _submit_device_job(session: Session, settings, notify: Callable[[], None], job_type: JobType, *,
                       model_id: str, device: DeviceSelector, name: str | None, options: str,
                       input_dataset_id: str | None, owner_id: str) -> Job:
    from edgefarm_gateway.devices import service as devices

    model = models.get(session, model_id)
    if model.format not in ("tflite", "onnx"):
        raise BadRequest(f"model {model.id} is {model.format}: compile it first (submit_compile_job), then "
                         f"{job_type.value} the compiled target")
    try:
        (ProfileOptions if job_type == JobType.PROFILE else RuntimeOptions).parse(options)
    except OptionsError as exc:
        raise BadRequest(f"options: {exc}") from None
    dataset = datasets.get(session, input_dataset_id) if input_dataset_id else None
    if dataset is not None:
        _check_inputs(session, model, dataset)
    waiting = devices.require_pool(session, settings, device)
    job = Job(id=new_id("j"), type=job_type.value, name=name or model.name, state=JobState.CREATED.value,
              model_id=model.id, device=device.model_dump(), options=options,
              input_dataset_id=dataset.id if dataset else None, owner_id=owner_id)
    session.add(job)
    repository.add_event(session, job, JobState.CREATED, waiting or "queued for a device")
    session.flush()
    after_commit(session, notify)
    return job


def submit_profile(session: Session, settings, notify: Callable[[], None], body: ProfileJobIn, owner_id: str) -> Job:
    return _submit_device_job(session, settings, notify, JobType.PROFILE, model_id=body.model_id,
                              device=body.device, name=body.name, options=body.options,
                              input_dataset_id=body.input_dataset_id, owner_id=owner_id)


def submit_inference(session: Session, settings, notify: Callable[[], None], body: InferenceJobIn,
                     owner_id: str) -> Job:
    return _submit_device_job(session, settings, notify, JobType.INFERENCE, model_id=body.model_id,
                              device=body.device, name=body.name, options=body.options,
                              input_dataset_id=body.input_dataset_id, owner_id=owner_id)
