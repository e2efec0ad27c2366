from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefarm_gateway.orm import Agent, Device


def agent_by_name(session: Session, name: str) -> Agent | None:
    return session.scalar(select(Agent).where(Agent.name == name))


def all_devices(session: Session, name: str | None = None) -> list[Device]:
    query = select(Device).where(Device.retired_at.is_(None)).order_by(Device.name, Device.serial)
    if name:
        query = query.where(Device.name == name)
    return list(session.scalars(query))


