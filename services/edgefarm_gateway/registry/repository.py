"""The registry's queries."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefarm_gateway.orm import Channel, ChannelEvent, ModelVersion, RegisteredModel


def by_name(session: Session, name: str, *, lock: bool = False) -> RegisteredModel | None:
    """`lock` takes the row for the rest of the transaction (PostgreSQL); SQLite's writers are serial already."""
    query = select(RegisteredModel).where(RegisteredModel.name == name)
    return session.scalar(query.with_for_update() if lock else query)


def page(session: Session, *, name: str | None, offset: int, limit: int) -> tuple[list[RegisteredModel], int]:
    query = select(RegisteredModel)
    if name:
        query = query.where(RegisteredModel.name.contains(name))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(RegisteredModel.created_at.desc(), RegisteredModel.id)
                           .offset(offset).limit(limit))
    return list(rows), total


def latest_numbers(session: Session, model_ids: Iterable[str]) -> dict[str, int]:
    rows = session.execute(select(ModelVersion.registered_model_id, func.max(ModelVersion.number))
                           .where(ModelVersion.registered_model_id.in_(list(model_ids)))
                           .group_by(ModelVersion.registered_model_id))
    return {model_id: number for model_id, number in rows}


def channel_numbers(session: Session, model_ids: Iterable[str]) -> dict[str, dict[str, int | None]]:
    """{model id: {channel: current version number (None when emptied)}}, channels by name."""
    rows = session.execute(select(Channel.registered_model_id, Channel.name, ModelVersion.number)
                           .outerjoin(ModelVersion, Channel.version_id == ModelVersion.id)
                           .where(Channel.registered_model_id.in_(list(model_ids)))
                           .order_by(Channel.name))
    found: dict[str, dict[str, int | None]] = {}
    for model_id, channel, number in rows:
        found.setdefault(model_id, {})[channel] = number
    return found


def max_number(session: Session, model_id: str) -> int:
    return session.scalar(select(func.max(ModelVersion.number))
                          .where(ModelVersion.registered_model_id == model_id)) or 0


def versions(session: Session, model_id: str, *, limit: int | None = None) -> list[ModelVersion]:
    query = (select(ModelVersion).where(ModelVersion.registered_model_id == model_id)
             .order_by(ModelVersion.number.desc()))
    return list(session.scalars(query.limit(limit) if limit else query))


def version(session: Session, model_id: str, number: int) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.registered_model_id == model_id,
                                                     ModelVersion.number == number))


def channel(session: Session, model_id: str, name: str) -> Channel | None:
    return session.scalar(select(Channel).where(Channel.registered_model_id == model_id, Channel.name == name))


def channels_on(session: Session, version_id: str) -> list[str]:
    return list(session.scalars(select(Channel.name).where(Channel.version_id == version_id).order_by(Channel.name)))


def last_promote_to(session: Session, model_id: str, channel_name: str, number: int) -> ChannelEvent | None:
    """The promotion that made `number` current on the channel most recently: its from_version is "the one before"."""
    return session.scalar(select(ChannelEvent)
                          .where(ChannelEvent.registered_model_id == model_id, ChannelEvent.channel == channel_name,
                                 ChannelEvent.action == "promote", ChannelEvent.to_version == number)
                          .order_by(ChannelEvent.id.desc()).limit(1))


def events(session: Session, model_id: str, *, limit: int) -> list[ChannelEvent]:
    return list(session.scalars(select(ChannelEvent).where(ChannelEvent.registered_model_id == model_id)
                                .order_by(ChannelEvent.id.desc()).limit(limit)))
