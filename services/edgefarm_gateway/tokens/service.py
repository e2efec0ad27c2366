"""API tokens. Only a hash is stored; the secret is shown once, when created."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefarm.wire import TokenOut
from edgefarm_gateway.errors import Conflict, NotFound
from edgefarm_gateway.orm import ApiToken, new_id, utcnow

ROLES = ("admin", "user", "agent", "fleet")  # fleet: devices in the field, fetch released models only


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    role: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, name: str, role: str) -> TokenOut:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    secret = "ef_" + secrets.token_urlsafe(32)
    row = ApiToken(id=new_id("t"), name=name, role=role, token_hash=_hash(secret))
    session.add(row)
    session.flush()
    return TokenOut(id=row.id, name=row.name, role=row.role, created_at=row.created_at, token=secret)


def authenticate(session: Session, secret: str) -> Principal | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.id, row.name, row.role)


def list_tokens(session: Session) -> list[TokenOut]:
    rows = session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at))
    return [TokenOut(id=r.id, name=r.name, role=r.role, created_at=r.created_at) for r in rows]


def revoke(session: Session, token_id: str, caller: Principal) -> None:
    """Revoke a token, but never the caller's own nor the last admin token: either would lock the farm's
    operators out of token management by one mistaken call (the farm's own admin token is kept in the data dir
    and printed by `edgefarm up`)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        raise NotFound(f"no active token {token_id}")
    if row.id == caller.id:
        raise Conflict(f"token {token_id} is the one this request is made with; revoke it with another admin token")
    if row.role == "admin":
        # Locked, so that two revocations at once cannot each see the other's token as the remaining admin.
        admins = session.scalars(select(ApiToken.id).where(ApiToken.role == "admin", ApiToken.revoked_at.is_(None))
                                 .with_for_update()).all()
        if admins == [row.id]:
            raise Conflict(f"token {token_id} is the last admin token; create another admin token first "
                           "(POST /api/v1/tokens with role admin)")
    row.revoked_at = utcnow()
