from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefarm_gateway.orm import Dataset


def by_sha256(session: Session, sha256: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.sha256 == sha256))


def page(session: Session, *, name: str | None, sha256: str | None, offset: int, limit: int) -> tuple[list[Dataset], int]:
    query = select(Dataset)
    if name:
        query = query.where(Dataset.name.contains(name))
    if sha256:
        query = query.where(Dataset.sha256 == sha256.lower())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Dataset.created_at.desc(), Dataset.id).offset(offset).limit(limit))
    return list(rows), total
