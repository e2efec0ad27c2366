"""One listing query for the stored things users browse (models, datasets): name filter, hash lookup, pages."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefarm_gateway.orm import Dataset, Model

Stored = TypeVar("Stored", Model, Dataset)

# Every list endpoint's page parameters. The offset's bound is far beyond any table here and within the 64-bit
# integers SQLite and PostgreSQL take (a larger one was a 500).
MAX_OFFSET = 2**31 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=200, description="rows to return")]


def page(session: Session, entity: type[Stored], *, name: str | None, sha256: str | None, offset: int,
         limit: int) -> tuple[list[Stored], int]:
    query = select(entity)
    if name:
        query = query.where(entity.name.contains(name))
    if sha256:
        query = query.where(entity.sha256 == sha256.lower())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(entity.created_at.desc(), entity.id).offset(offset).limit(limit))
    return list(rows), total


def by_sha256(session: Session, entity: type[Stored], sha256: str) -> Stored | None:
    return session.scalar(select(entity).where(entity.sha256 == sha256))
