from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from edgefarm.wire import CompileJobIn, JobOut, JobState, JobType, Page
from edgefarm_gateway.deps import SessionDep, UserDep
from edgefarm_gateway.jobs import service

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("/compile", status_code=201, response_model=JobOut)
def submit_compile_job(body: CompileJobIn, request: Request, session: SessionDep, user: UserDep) -> JobOut:
    """Compile a model for a device. Identical requests reuse the finished target (`cache_hit`)."""
    return service.to_out(service.submit_compile(session, request.app.state.celery, body, user.id))


@router.get("", response_model=Page[JobOut])
def list_jobs(session: SessionDep, _: UserDep, type: JobType | None = None, state: JobState | None = None,
              name: str | None = None, model_id: str | None = None,
              offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[JobOut]:
    return service.list_page(session, type=type, state=state, name=name, model_id=model_id, offset=offset,
                             limit=limit)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, _: UserDep) -> JobOut:
    return service.to_out(service.get(session, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, session: SessionDep, _: UserDep) -> JobOut:
    return service.to_out(service.cancel(session, job_id))
