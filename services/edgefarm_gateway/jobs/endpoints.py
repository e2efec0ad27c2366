from __future__ import annotations


from fastapi import APIRouter, Request

from edgefarm.wire import CompileJobIn, InferenceJobIn, JobOut, JobState, JobType, Page, ProfileJobIn
from edgefarm_gateway import paging
from edgefarm_gateway.deps import SessionDep, SettingsDep, UserDep
from edgefarm_gateway.errors import error_responses
from edgefarm_gateway.jobs import service

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=error_responses(400, 404, 409))


@router.post("/compile", status_code=201, response_model=JobOut)
def submit_compile_job(body: CompileJobIn, request: Request, session: SessionDep, settings: SettingsDep,
                       user: UserDep) -> JobOut:
    """Compile a model for a device pool the farm knows (or for no particular device), verified against the
    source. Identical requests reuse the finished target (`cache_hit`)."""
    return service.to_out(service.submit_compile(session, settings, request.app.state.celery, body, user.id))


@router.post("/profile", status_code=201, response_model=JobOut)
def submit_profile_job(body: ProfileJobIn, request: Request, session: SessionDep, settings: SettingsDep,
                       user: UserDep) -> JobOut:
    """Measure a TFLite or ONNX model on a device: latency statistics, memory, load times, per-op placement."""
    return service.to_out(service.submit_profile(session, settings, request.app.state.notifier.notify, body, user.id))


@router.post("/inference", status_code=201, response_model=JobOut)
def submit_inference_job(body: InferenceJobIn, request: Request, session: SessionDep, settings: SettingsDep,
                         user: UserDep) -> JobOut:
    """Run a model on a device with inputs in the source model's terms; outputs come back as a dataset."""
    return service.to_out(service.submit_inference(session, settings, request.app.state.notifier.notify, body,
                                                   user.id))


@router.get("", response_model=Page[JobOut])
def list_jobs(session: SessionDep, _: UserDep, type: JobType | None = None, state: JobState | None = None,
              name: str | None = None, model_id: str | None = None, device_id: str | None = None,
              offset: paging.Offset = 0,
              limit: paging.Limit = 50) -> Page[JobOut]:
    return service.list_page(session, type=type, state=state, name=name, model_id=model_id, device_id=device_id,
                             offset=offset, limit=limit)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, _: UserDep) -> JobOut:
    return service.to_out(service.get(session, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, session: SessionDep, _: UserDep) -> JobOut:
    return service.to_out(service.cancel(session, job_id))
