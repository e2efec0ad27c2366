from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from edgefarm.wire import Label, ModelOut, Page
from edgefarm_gateway import paging
from edgefarm_gateway.deps import SessionDep, SettingsDep, StoreDep, UserDep
from edgefarm_gateway.downloads import artifact_response
from edgefarm_gateway.errors import error_responses
from edgefarm_gateway.models import service

router = APIRouter(prefix="/models", tags=["models"], responses=error_responses(400, 404, 408, 413))


@router.post("", status_code=201, response_model=ModelOut,
             responses={200: {"model": ModelOut, "description": "the same bytes were uploaded before"}})
def upload_model(file: Annotated[UploadFile, File()], session: SessionDep, store: StoreDep, settings: SettingsDep,
                 user: UserDep, response: Response, name: Annotated[Label, Form()] = "") -> ModelOut:
    """Upload an ONNX, TorchScript or TFLite model. Content-addressed: the same bytes give the same model."""
    model, created = service.upload(session, store, file.file, name=name, filename=file.filename,
                                    max_bytes=settings.max_model_bytes, owner_id=user.id)
    if not created:
        response.status_code = 200
    return model


@router.get("", response_model=Page[ModelOut])
def list_models(session: SessionDep, _: UserDep, name: str | None = None,
                sha256: Annotated[str | None, Query(description="find stored bytes by content hash")] = None,
                offset: paging.Offset = 0,
                limit: paging.Limit = 50) -> Page[ModelOut]:
    return service.list_page(session, name=name, sha256=sha256, offset=offset, limit=limit)


@router.get("/{model_id}", response_model=ModelOut)
def get_model(model_id: str, session: SessionDep, _: UserDep) -> ModelOut:
    return service.to_out(service.get(session, model_id))


@router.get("/{model_id}/download", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_model(model_id: str, request: Request, session: SessionDep, store: StoreDep, _: UserDep) -> Response:
    model = service.get(session, model_id)
    return artifact_response(request, store, model.sha256, service.filename(model))
