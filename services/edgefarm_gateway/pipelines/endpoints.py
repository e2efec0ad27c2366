from __future__ import annotations


from fastapi import APIRouter, Request

from edgefarm.wire import Page, PipelineIn, PipelineOut, PipelineState
from edgefarm_gateway import paging
from edgefarm_gateway.deps import SessionDep, SettingsDep, UserDep
from edgefarm_gateway.errors import error_responses
from edgefarm_gateway.pipelines import service

router = APIRouter(prefix="/pipelines", tags=["pipelines"], responses=error_responses(400, 404, 409))


@router.post("", status_code=201, response_model=PipelineOut)
def submit_pipeline(body: PipelineIn, request: Request, session: SessionDep, settings: SettingsDep,
                    user: UserDep) -> PipelineOut:
    """Compile, profile and run on each device, compare with FP32, gate; register a version when every gate
    passes. Runs as ordinary jobs (listed in `jobs`); the verdict is in `report`."""
    return service.to_out(service.submit(session, settings, request.app.state.celery, body, user))


@router.get("", response_model=Page[PipelineOut])
def list_pipelines(session: SessionDep, _: UserDep, name: str | None = None, state: PipelineState | None = None,
                   offset: paging.Offset = 0,
                   limit: paging.Limit = 50) -> Page[PipelineOut]:
    return service.list_page(session, name=name, state=state, offset=offset, limit=limit)


@router.get("/{pipeline_id}", response_model=PipelineOut)
def get_pipeline(pipeline_id: str, session: SessionDep, _: UserDep) -> PipelineOut:
    return service.to_out(service.get(session, pipeline_id))


@router.post("/{pipeline_id}/cancel", response_model=PipelineOut)
def cancel_pipeline(pipeline_id: str, session: SessionDep, _: UserDep) -> PipelineOut:
    """Stop the pipeline and its running jobs; nothing is registered."""
    return service.to_out(service.cancel(session, pipeline_id))
