from __future__ import annotations

from pathlib import PurePath
from typing import BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefarm.wire import ModelOut, Page, TensorInfo, as_label
from edgefarm_gateway import paging
from edgefarm_gateway.errors import NotFound
from edgefarm_gateway.models.inspect import inspect_model
from edgefarm_gateway.orm import Model, new_id
from edgefarm_gateway.storage import ArtifactStore

EXTENSIONS = {"onnx": ".onnx", "torchscript": ".pt", "tflite": ".tflite"}


def to_out(model: Model) -> ModelOut:
    return ModelOut(id=model.id, name=model.name, format=model.format, sha256=model.sha256, size=model.size,
                    inputs=model.inputs, outputs=model.outputs, producer_job_id=model.producer_job_id,
                    created_at=model.created_at)


def upload(session: Session, store: ArtifactStore, source: BinaryIO, *, name: str, filename: str | None,
           max_bytes: int, owner_id: str) -> tuple[ModelOut, bool]:
    """Store a model if its bytes are new; returns (model, created). Same bytes → the model already stored."""
    with store.stage(source, max_bytes=max_bytes, what="model") as staged:
        existing = paging.by_sha256(session, Model, staged.sha256)
        if existing is not None:
            return to_out(existing), False
        # Reading a model takes seconds for a large one; on SQLite an open transaction holds the one write lock
        # all that time (a 440 MB upload raised every other request's worst latency from 11 ms to 1.24 s).
        session.commit()
        facts = inspect_model(staged.path)
        store.keep(staged)
    model = Model(id=new_id("m"), name=name or as_label(PurePath(filename or "").stem) or "model",
                  format=facts.format, sha256=staged.sha256, size=staged.size,
                  inputs=[t.model_dump() for t in facts.inputs], outputs=[t.model_dump() for t in facts.outputs],
                  owner_id=owner_id)
    try:
        with session.begin_nested():
            session.add(model)
    except IntegrityError:  # the same bytes, uploaded at the same moment by another request
        return to_out(paging.by_sha256(session, Model, staged.sha256)), False
    return to_out(model), True


def add_compiled(session: Session, *, name: str, format: str, sha256: str, size: int,
                 inputs: list[TensorInfo], outputs: list[TensorInfo], job_id: str, owner_id: str | None) -> Model:
    """Register a compile job's output (already in the store). Identical bytes reuse the existing row."""
    existing = paging.by_sha256(session, Model, sha256)
    if existing is not None:
        return existing
    model = Model(id=new_id("m"), name=name, format=format, sha256=sha256, size=size,
                  inputs=[t.model_dump() for t in inputs], outputs=[t.model_dump() for t in outputs],
                  producer_job_id=job_id, owner_id=owner_id)
    session.add(model)
    session.flush()
    return model


def get(session: Session, model_id: str) -> Model:
    model = session.get(Model, model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")
    return model


def list_page(session: Session, *, name: str | None, sha256: str | None, offset: int, limit: int) -> Page[ModelOut]:
    rows, total = paging.page(session, Model, name=name, sha256=sha256, offset=offset, limit=limit)
    return Page[ModelOut](items=[to_out(m) for m in rows], total=total, offset=offset, limit=limit)


def filename(model: Model) -> str:
    return f"{model.name}{EXTENSIONS[model.format]}"
