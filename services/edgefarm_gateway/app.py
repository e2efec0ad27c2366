"""The gateway: the farm's only public entry (REST under /api/v1)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import version

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from edgefarm_gateway.agents.endpoints import router as agents_router
from edgefarm_gateway.dashboard.session import session_secret
from edgefarm_gateway.dashboard.endpoints import STATIC_DIR as DASHBOARD_STATIC, router as dashboard_router
from edgefarm_gateway.datasets.endpoints import router as datasets_router
from edgefarm_gateway.db import Database
from edgefarm_gateway.devices.endpoints import router as devices_router
from edgefarm_gateway.errors import error_responses, install_error_handlers
from edgefarm_gateway.jobs.endpoints import router as jobs_router
from edgefarm_gateway.jobs.reconciler import reconcile_once
from edgefarm_gateway.limits import BodyLimit
from edgefarm_gateway.models.endpoints import router as models_router
from edgefarm_gateway.notifier import JobNotifier
from edgefarm_gateway.periodic import Periodic
from edgefarm_gateway.pipelines.driver import advance_all
from edgefarm_gateway.pipelines.endpoints import router as pipelines_router
from edgefarm_gateway.queue import make_celery
from edgefarm_gateway.registry.endpoints import router as registry_router
from edgefarm_gateway.settings import Settings, get_settings
from edgefarm_gateway.storage import ArtifactStore
from edgefarm_gateway.tokens.endpoints import router as tokens_router

VERSION = version("edgefarm")


def _operation_id(route: APIRoute) -> str:
    # Stable ids ("jobs-get_job") keep the committed OpenAPI document and generated clients readable.
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None, *, background: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.notifier.bind(asyncio.get_running_loop())
        state = app.state
        loops = [Periodic("reconcile", settings.reconcile_interval_seconds,
                          partial(reconcile_once, state.db, state.celery, settings)),
                 Periodic("pipelines", settings.pipeline_interval_seconds,
                          partial(advance_all, state.db, state.store, settings, state.notifier.notify))]
        for loop in loops if background else []:
            loop.start()
        yield
        for loop in loops if background else []:
            loop.stop()

    app = FastAPI(title="EdgeFarm", version=VERSION, lifespan=lifespan,
                  description="Compile, profile and run models on your own edge devices.",
                  generate_unique_id_function=_operation_id)
    app.state.settings = settings
    app.state.db = Database(settings)
    app.state.store = ArtifactStore(settings.artifacts_path)
    app.state.celery = make_celery(settings)
    app.state.notifier = JobNotifier()
    app.state.session_key = session_secret(settings)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)

    @app.get("/api/v1/health", tags=["health"])
    async def health() -> dict[str, str]:  # async: answered on the event loop, never queued behind database work
        return {"status": "ok", "version": VERSION}

    # What any call with a token can be answered with; each router adds its own.
    api = APIRouter(prefix="/api/v1", responses=error_responses(401, 403, 422, 503))
    for router in (models_router, datasets_router, jobs_router, pipelines_router, devices_router, agents_router,
                   tokens_router, registry_router):
        api.include_router(router)
    app.include_router(api)
    app.include_router(dashboard_router)
    app.mount("/dashboard/static", StaticFiles(directory=DASHBOARD_STATIC), name="dashboard-static")
    return app
