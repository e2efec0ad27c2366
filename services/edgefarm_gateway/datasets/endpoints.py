from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from edgefarm.wire import DatasetOut, Label, Page
from edgefarm_gateway import paging
from edgefarm_gateway.datasets import service
from edgefarm_gateway.deps import SessionDep, SettingsDep, StoreDep, UserDep
from edgefarm_gateway.downloads import artifact_response
from edgefarm_gateway.errors import error_responses

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=error_responses(400, 404, 408, 413))


@router.post("", status_code=201, response_model=DatasetOut,
             responses={200: {"model": DatasetOut, "description": "the same bytes were uploaded before"}})
def upload_dataset(file: Annotated[UploadFile, File()], session: SessionDep, store: StoreDep,
                   settings: SettingsDep, user: UserDep, response: Response,
                   name: Annotated[Label, Form()] = "") -> DatasetOut:
    """Upload named tensors as an .npz (one array per input, samples along axis 0; no pickles)."""
    dataset, created = service.upload(session, store, file.file, name=name, filename=file.filename,
                                      max_bytes=settings.max_dataset_bytes, owner_id=user.id)
    if not created:
        response.status_code = 200
    return dataset


@router.get("", response_model=Page[DatasetOut])
def list_datasets(session: SessionDep, _: UserDep, name: str | None = None,
                sha256: Annotated[str | None, Query(description="find stored bytes by content hash")] = None,
                  offset: paging.Offset = 0,
                  limit: paging.Limit = 50) -> Page[DatasetOut]:
    return service.list_page(session, name=name, sha256=sha256, offset=offset, limit=limit)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, _: UserDep) -> DatasetOut:
    return service.to_out(service.get(session, dataset_id))


@router.get("/{dataset_id}/download", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_dataset(dataset_id: str, request: Request, session: SessionDep, store: StoreDep,
                     _: UserDep) -> Response:
    dataset = service.get(session, dataset_id)
    return artifact_response(request, store, dataset.sha256, f"{dataset.name}.npz")
