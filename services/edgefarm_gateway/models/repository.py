from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefarm_gateway.orm import Model


def by_sha256(session: Session, sha256: str) -> Model | None:
    return session.scalar(select(Model).where(Model.sha256 == sha256))


def page(session: Session, *, name: str | None, sha256: str | None, offset: int, limit: int) -> tuple[list[Model], int]:
    query = select(Model)
    if name:
        query = query.where(Model.name.contains(name))
    if sha256:
        query = query.where(Model.sha256 == sha256.lower())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Model.created_at.desc(), Model.id).offset(offset).limit(limit))
    return list(rows), total
