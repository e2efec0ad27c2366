from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from edgefarm.wire import (ChannelOut, ModelVersionOut, Page, PromoteIn, RegisteredModelDetailOut, RegisteredModelOut,
                           RollbackIn)
from edgefarm_gateway import paging
from edgefarm_gateway.deps import FleetDep, SessionDep, StoreDep, UserDep
from edgefarm_gateway.downloads import artifact_response
from edgefarm_gateway.errors import error_responses
from edgefarm_gateway.registry import service

router = APIRouter(prefix="/registry", tags=["registry"], responses=error_responses(400, 404, 409))

DeviceQuery = Annotated[str | None, Query(
    description="the device pool whose target to fetch, e.g. 'Host CPU'; may be omitted when the version has one")]
ARTIFACT_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"application/octet-stream": {}},
          "description": "the target's bytes; ETag is its sha256 in quotes. Headers X-EdgeFarm-Model, "
                         "X-EdgeFarm-Version (and X-EdgeFarm-Channel) say what was fetched"},
    304: {"description": "If-None-Match held the current ETag: the device already has these bytes"},
}


def _fetched(request: Request, store, model, version, target, channel: str | None = None) -> Response:
    response = artifact_response(request, store, target["sha256"], service.filename(model, version, target))
    response.headers["X-EdgeFarm-Model"] = model.name
    response.headers["X-EdgeFarm-Version"] = str(version.number)
    if channel is not None:
        response.headers["X-EdgeFarm-Channel"] = channel
        response.headers["Cache-Control"] = "no-cache"  # what a channel serves changes: always revalidate
    return response


@router.get("/models", response_model=Page[RegisteredModelOut])
def list_registered_models(session: SessionDep, _: UserDep, name: str | None = None,
                           offset: paging.Offset = 0,
                           limit: paging.Limit = 50) -> Page[RegisteredModelOut]:
    """Registered models, newest first, with their latest version and what each channel serves."""
    return service.list_page(session, name=name, offset=offset, limit=limit)


@router.get("/models/{name}", response_model=RegisteredModelDetailOut)
def get_registered_model(name: str, session: SessionDep, _: UserDep) -> RegisteredModelDetailOut:
    """A registered model with its versions (newest first) and its latest channel changes."""
    return service.detail(session, service.get(session, name))


@router.get("/models/{name}/versions/{number}", response_model=ModelVersionOut)
def get_model_version(name: str, number: int, session: SessionDep, _: UserDep) -> ModelVersionOut:
    """One version: its per-device targets and the evidence that gated it."""
    model = service.get(session, name)
    return service.version_out(session, model, service.get_version(session, model, number))


@router.post("/models/{name}/channels/{channel}/promote", response_model=ChannelOut)
def promote(name: str, channel: str, body: PromoteIn, session: SessionDep, user: UserDep) -> ChannelOut:
    """Make a version what the channel serves; the channel is created by its first promotion."""
    return service.promote(session, name, channel, body.version, reason=body.reason, by=user)


@router.post("/models/{name}/channels/{channel}/rollback", response_model=ChannelOut)
def rollback(name: str, channel: str, body: RollbackIn, session: SessionDep, user: UserDep) -> ChannelOut:
    """Put back the version the channel served before its current one was promoted (a reason is required)."""
    return service.rollback(session, name, channel, reason=body.reason, by=user)


@router.get("/models/{name}/channels/{channel}/artifact", response_class=Response, responses=ARTIFACT_RESPONSES)
def fetch_channel_artifact(name: str, channel: str, request: Request, session: SessionDep, store: StoreDep,
                           _: FleetDep, device: DeviceQuery = None) -> Response:
    """What a device fetches: the channel's current version's target for its device pool (fleet tokens may)."""
    model, version, target = service.channel_target(session, name, channel, device)
    return _fetched(request, store, model, version, target, channel)


@router.get("/models/{name}/versions/{number}/artifact", response_class=Response, responses=ARTIFACT_RESPONSES)
def fetch_version_artifact(name: str, number: int, request: Request, session: SessionDep, store: StoreDep,
                           _: FleetDep, device: DeviceQuery = None) -> Response:
    """A fixed version's target for a device pool (fleet tokens may)."""
    model, version, target = service.version_target(session, name, number, device)
    return _fetched(request, store, model, version, target)
