"""The device agents' protocol: register, heartbeat, lease (long poll), downloads, progress, result, failure."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from edgefarm.wire import (AgentRegisterIn, AgentRegisterOut, FailureIn, HeartbeatIn, Id, Lease, LeaseIn,
                           ProgressIn)
from edgefarm_gateway.agents import service
from edgefarm_gateway.deps import AgentDep, SessionDep, SettingsDep, StoreDep
from edgefarm_gateway.devices import service as devices
from edgefarm_gateway.downloads import artifact_response
from edgefarm_gateway.errors import NotFound, error_responses
from edgefarm_gateway.orm import Dataset, Model

router = APIRouter(prefix="/agent", tags=["agent"], responses=error_responses(400, 404, 408, 409, 413))
LeaseToken = Annotated[str, Header(alias="X-Lease-Token", description="the lease token of the job")]


@router.post("/register", response_model=AgentRegisterOut)
def register(body: AgentRegisterIn, session: SessionDep, settings: SettingsDep, agent: AgentDep) -> AgentRegisterOut:
    """Declare an agent and its devices. Registering again (a restart) updates them; it never duplicates.
    403 when the token is bound to another agent, or a device is in a pool the token may not serve."""
    registered = devices.register(session, body, agent)
    active = [d for d in registered.devices if d.retired_at is None]
    return AgentRegisterOut(agent_id=registered.id, devices=[devices.to_out(d, settings) for d in active],
                            heartbeat_seconds=settings.agent_heartbeat_seconds,
                            lease_seconds=settings.device_lease_seconds)


@router.post("/heartbeat", status_code=204)
def heartbeat(body: HeartbeatIn, session: SessionDep, agent: AgentDep) -> Response:
    devices.heartbeat(session, body.agent_id, agent.id)
    return Response(status_code=204)


@router.post("/lease", response_model=Lease, responses={204: {"description": "no job within wait_seconds"}})
async def lease(body: LeaseIn, request: Request, agent: AgentDep) -> Lease | Response:
    """Long poll: the oldest queued job one of these free devices can run, or 204 after `wait_seconds`."""
    db, settings, notifier = request.app.state.db, request.app.state.settings, request.app.state.notifier

    def attempt() -> Lease | None:
        with db.session() as session:
            registered = devices.get_agent(session, body.agent_id, agent.id)
            devices.heartbeat(session, body.agent_id, agent.id)  # a polling agent is alive
            return service.lease(session, settings, registered, body.device_ids)

    deadline = time.monotonic() + body.wait_seconds
    while True:
        # Checked before each attempt: a job leased to an agent that has gone would sit out its lease.
        if await request.is_disconnected():
            return Response(status_code=204)
        granted = await run_in_threadpool(attempt)
        remaining = deadline - time.monotonic()
        if granted is not None or remaining <= 0:
            return granted or Response(status_code=204)
        await notifier.wait(min(remaining, 1.0))


@router.get("/jobs/{job_id}/model", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_model(job_id: str, lease_token: LeaseToken, request: Request, session: SessionDep, store: StoreDep,
                   agent: AgentDep) -> Response:
    job = service.held(session, agent.id, job_id, lease_token)
    model = session.get(Model, job.model_id)
    return artifact_response(request, store, model.sha256, f"{job.id}-{model.format}.{model.format}")


@router.get("/jobs/{job_id}/inputs", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_inputs(job_id: str, lease_token: LeaseToken, request: Request, session: SessionDep, store: StoreDep,
                    agent: AgentDep) -> Response:
    job = service.held(session, agent.id, job_id, lease_token)
    if job.input_dataset_id is None:
        raise NotFound(f"job {job_id} has no inputs: use random inputs of the model's shapes")
    dataset = session.get(Dataset, job.input_dataset_id)
    return artifact_response(request, store, dataset.sha256, f"{job.id}-inputs.npz")


@router.post("/jobs/{job_id}/progress", status_code=204)
def progress(job_id: str, body: ProgressIn, session: SessionDep, settings: SettingsDep, agent: AgentDep) -> Response:
    """Renews the lease; with `state`, moves the job to MEASURING_PERFORMANCE / RUNNING_INFERENCE."""
    service.progress(session, settings, agent.id, job_id, body)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/result", status_code=204)
def result(job_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, agent: AgentDep,
           lease_token: Annotated[Id, Form()], profile: Annotated[str | None, Form()] = None,
           result: Annotated[str, Form()] = "", outputs: Annotated[UploadFile | None, File()] = None,
           log: Annotated[str, Form()] = "") -> Response:
    """A profile (JSON) for profile jobs, or outputs (.npz by source output name) for inference jobs."""
    if outputs is not None:
        service.record_inference(session, store, settings, agent.id, job_id, lease_token, outputs.file, result)
    else:
        service.record_profile(session, agent.id, job_id, lease_token, profile or "")
    return Response(status_code=204)


@router.post("/jobs/{job_id}/failure", status_code=204)
def failure(job_id: str, body: FailureIn, session: SessionDep, agent: AgentDep) -> Response:
    service.record_failure(session, agent.id, job_id, body.lease_token,
                           body.reason, body.log)
    return Response(status_code=204)
