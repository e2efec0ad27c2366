from __future__ import annotations

from pathlib import PurePath
from typing import BinaryIO

from sqlalchemy.orm import Session

from edgefarm.wire import DatasetEntry, DatasetOut, Page, as_label
from edgefarm_gateway.datasets.inspect import inspect_dataset
from edgefarm_gateway import paging
from edgefarm_gateway.errors import NotFound
from edgefarm_gateway.orm import Dataset, new_id
from edgefarm_gateway.storage import ArtifactStore


def to_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(id=dataset.id, name=dataset.name, sha256=dataset.sha256, size=dataset.size,
                      entries={k: DatasetEntry(**v) for k, v in dataset.entries.items()},
                      created_at=dataset.created_at)


def upload(session: Session, store: ArtifactStore, source: BinaryIO, *, name: str, filename: str | None,
           max_bytes: int, owner_id: str) -> tuple[DatasetOut, bool]:
    dataset, created = add(session, store, source, name=name or as_label(PurePath(filename or "").stem) or "dataset",
                           max_bytes=max_bytes, owner_id=owner_id)
    return to_out(dataset), created


def add(session: Session, store: ArtifactStore, source: BinaryIO, *, name: str, max_bytes: int,
        owner_id: str | None) -> tuple[Dataset, bool]:
    """Validate and store a .npz (users' uploads, device outputs, reference outputs); the same bytes are one
    dataset. Returns it and whether it is new."""
    with store.stage(source, max_bytes=max_bytes, what="dataset") as staged:
        existing = paging.by_sha256(session, Dataset, staged.sha256)
        if existing is not None:
            return existing, False
        entries = inspect_dataset(staged.path, max_bytes=max_bytes)
        store.keep(staged)
    dataset = Dataset(id=new_id("d"), name=name, sha256=staged.sha256, size=staged.size,
                      entries={k: v.model_dump() for k, v in entries.items()}, owner_id=owner_id)
    session.add(dataset)
    session.flush()
    return dataset, True


def get(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}")
    return dataset


def list_page(session: Session, *, name: str | None, sha256: str | None, offset: int, limit: int) -> Page[DatasetOut]:
    rows, total = paging.page(session, Dataset, name=name, sha256=sha256, offset=offset, limit=limit)
    return Page[DatasetOut](items=[to_out(d) for d in rows], total=total, offset=offset, limit=limit)
