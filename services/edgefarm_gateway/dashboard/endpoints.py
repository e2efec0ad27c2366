"""Dashboard pages (server-rendered) and the small fragments their scripts poll, all behind the session cookie.

Reads go through the same domain services as the REST API; nothing here queries the database itself.
None of these routes is part of the API, so none is in the OpenAPI document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from edgefarm.wire import DeviceSelector, JobOut, JobState, JobType
from edgefarm_gateway.dashboard import views
from edgefarm_gateway.dashboard.session import (COOKIE, MAX_AGE_SECONDS, CookieUserDep, LoginRefused, PageUserDep,
                                                login as open_session)
from edgefarm_gateway.datasets import service as datasets
from edgefarm_gateway.deps import SessionDep, SettingsDep, StoreDep
from edgefarm_gateway.devices import service as devices
from edgefarm_gateway.downloads import artifact_response
from edgefarm_gateway.errors import NotFound
from edgefarm_gateway.jobs import service as jobs
from edgefarm_gateway.models import service as models
from edgefarm_gateway.pipelines import service as pipelines
from edgefarm_gateway.registry import service as registry

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
JOBS_SHOWN = 100

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(seconds=views.seconds_text, size=views.bytes_text, micros=views.micros_text)
templates.env.globals.update(timing=views.timing, device_label=views.device_label, latency_of=views.latency_of)

router = APIRouter(include_in_schema=False)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect to another host.
    local = target and target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if local else "/jobs"


def _render(request: Request, template: str, /, status_code: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context, status_code=status_code)


# --- signing in -----------------------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, user: PageUserDep, next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", next=_safe_next(next), error=None, user=None)


@router.post("/login")
def login(request: Request, session: SessionDep, token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/jobs") -> Response:
    try:
        cookie = open_session(session, request.app.state.session_key, token)
    except LoginRefused as exc:
        return _render(request, "login.html", status_code=401, next=_safe_next(next), error=str(exc), user=None)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=MAX_AGE_SECONDS, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="lax")
    return response


@router.get("/")
def home() -> Response:
    return RedirectResponse("/jobs", status_code=303)


# --- jobs -----------------------------------------------------------------------------------------------------


class JobFilters(BaseModel):
    """The jobs page's filters, as query parameters; unknown values filter nothing."""

    type: str | None = None
    state: str | None = None
    name: str | None = None
    device: str | None = None  # a device id
    model: str | None = None  # a model id (source or target)


JobFiltersDep = Annotated[JobFilters, Query()]


def _job_rows(session, filters: JobFilters) -> dict:
    page = jobs.list_page(session, type=JobType(filters.type) if filters.type in {t.value for t in JobType} else None,
                          state=JobState(filters.state) if filters.state in {s.value for s in JobState} else None,
                          name=filters.name or None, model_id=filters.model or None,
                          device_id=filters.device or None, offset=0, limit=JOBS_SHOWN)
    return {"page": page, "positions": jobs.queue_positions(session)}


@router.get("/jobs")
def jobs_page(request: Request, session: SessionDep, settings: SettingsDep, user: PageUserDep,
              filters: JobFiltersDep) -> Response:
    if user is None:
        return _to_login(request)
    return _render(request, "jobs.html", user=user, **_job_rows(session, filters), filters=filters.model_dump(),
                   types=[t.value for t in JobType], states=[s.value for s in JobState],
                   devices=devices.list_devices(session, settings, DeviceSelector()))


@router.get("/dashboard/fragments/jobs")
def jobs_fragment(request: Request, session: SessionDep, _: CookieUserDep, filters: JobFiltersDep) -> Response:
    return _render(request, "_job_rows.html", **_job_rows(session, filters))


def _device_name(session, settings, job: JobOut) -> str:
    if not job.device_id:
        return ""
    for device in devices.list_devices(session, settings, DeviceSelector(name=job.device.name)):
        if device.id == job.device_id:
            return f"{device.name} ({device.serial}, agent {device.agent_name})"
    return job.device_id


@router.get("/jobs/{job_id}")
def job_page(job_id: str, request: Request, session: SessionDep, settings: SettingsDep, store: StoreDep,
             user: PageUserDep) -> Response:
    if user is None:
        return _to_login(request)
    try:
        job = jobs.to_out(jobs.get(session, job_id))
    except NotFound:
        return _render(request, "not_found.html", status_code=404, user=user, what=f"job {job_id}")
    model = models.to_out(models.get(session, job.model_id))
    target = models.to_out(models.get(session, job.target_model_id)) if job.target_model_id else None
    result = job.result or {}
    profile = views.profile_view(result) if job.type == JobType.PROFILE and "execution_summary" in result else None
    outputs = None
    if job.type == JobType.INFERENCE and result.get("output_dataset_id"):
        dataset = datasets.get(session, result["output_dataset_id"])
        outputs = views.output_stats(store.path(dataset.sha256))
    return _render(request, "job.html", user=user, job=job, model=model, target=target, result=result,
                   profile=profile, output_stats=outputs, ran_on=_device_name(session, settings, job),
                   log_tail=views.log_tail(result.get("log")),
                   label_and_time=views.timing(job))


@router.get("/dashboard/fragments/jobs/{job_id}/state")
def job_state(job_id: str, session: SessionDep, _: CookieUserDep) -> dict:
    job = jobs.get(session, job_id)
    return {"state": job.state, "events": len(job.events)}


@router.get("/jobs/{job_id}/download")
def job_download(job_id: str, request: Request, session: SessionDep, store: StoreDep, user: PageUserDep) -> Response:
    """What the job produced: the compiled model, the profile JSON, or the inference outputs (.npz)."""
    if user is None:
        return _to_login(request)
    job = jobs.to_out(jobs.get(session, job_id))
    if job.state != JobState.SUCCESS:
        raise NotFound(f"job {job_id} is {job.state.value}: it has nothing to download")
    if job.type == JobType.COMPILE and job.target_model_id:
        target = models.get(session, job.target_model_id)
        return artifact_response(request, store, target.sha256, models.filename(target))
    if job.type == JobType.PROFILE:
        return Response(json.dumps(job.result, indent=2), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{job.id}-profile.json"'})
    if job.type == JobType.INFERENCE and job.result and job.result.get("output_dataset_id"):
        dataset = datasets.get(session, job.result["output_dataset_id"])
        return artifact_response(request, store, dataset.sha256, f"{dataset.name}.npz")
    raise NotFound(f"job {job_id} has nothing to download")


# --- devices and models ---------------------------------------------------------------------------------------


def _devices_context(session, settings) -> dict:
    all_devices = devices.list_devices(session, settings, DeviceSelector())
    recent = {d.id: jobs.list_page(session, type=None, state=None, name=None, model_id=None, device_id=d.id,
                                   offset=0, limit=5).items for d in all_devices}
    return {"pools": views.pools(all_devices), "recent": recent}


@router.get("/devices")
def devices_page(request: Request, session: SessionDep, settings: SettingsDep, user: PageUserDep) -> Response:
    if user is None:
        return _to_login(request)
    return _render(request, "devices.html", user=user, **_devices_context(session, settings))


@router.get("/dashboard/fragments/devices")
def devices_fragment(request: Request, session: SessionDep, settings: SettingsDep, _: CookieUserDep) -> Response:
    return _render(request, "_device_pools.html", **_devices_context(session, settings))


@router.get("/models")
def models_page(request: Request, session: SessionDep, user: PageUserDep, name: str | None = None) -> Response:
    if user is None:
        return _to_login(request)
    page = models.list_page(session, name=name or None, sha256=None, offset=0, limit=200)
    return _render(request, "models.html", user=user, page=page, name=name or "",
                   releases=registry.releases(session))


@router.get("/pipelines")
def pipelines_page(request: Request, session: SessionDep, user: PageUserDep) -> Response:
    if user is None:
        return _to_login(request)
    page = pipelines.list_page(session, name=None, state=None, offset=0, limit=JOBS_SHOWN)
    return _render(request, "pipelines.html", user=user, page=page)


@router.get("/pipelines/{pipeline_id}")
def pipeline_page(pipeline_id: str, request: Request, session: SessionDep, user: PageUserDep) -> Response:
    """The SDK's `pipeline.url`: the pipeline's jobs, timeline, and its verdict as tables."""
    if user is None:
        return _to_login(request)
    try:
        pipeline = pipelines.to_out(pipelines.get(session, pipeline_id))
    except NotFound:
        return _render(request, "not_found.html", status_code=404, user=user, what=f"pipeline {pipeline_id}")
    return _render(request, "pipeline.html", user=user, pipeline=pipeline)


@router.get("/models/{model_id}/download")
def model_download(model_id: str, request: Request, session: SessionDep, store: StoreDep,
                   user: PageUserDep) -> Response:
    if user is None:
        return _to_login(request)
    model = models.get(session, model_id)
    return artifact_response(request, store, model.sha256, models.filename(model))
