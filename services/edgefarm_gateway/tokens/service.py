"""API tokens. Only a hash is stored; the secret is shown once, when created."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edgefarm.wire import TokenIn, TokenOut
from edgefarm_gateway.errors import BadRequest, Conflict, Forbidden, NotFound
from edgefarm_gateway.orm import ApiToken, new_id, utcnow


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    role: str
    agent_name: str | None = None  # agent tokens: the agent it is bound to (None: not yet)
    pools: tuple[str, ...] | None = None  # agent tokens: the device pools it may serve (None: any)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, request: TokenIn) -> TokenOut:
    if request.role != "agent" and (request.agent is not None or request.pools is not None):
        raise BadRequest("agent and pools bind agent tokens only; leave them out for a "
                         f"{request.role} token")
    secret = "ef_" + secrets.token_urlsafe(32)
    row = ApiToken(id=new_id("t"), name=request.name, role=request.role, token_hash=_hash(secret),
                   agent_name=request.agent, pools=sorted(set(request.pools)) if request.pools else None)
    session.add(row)
    session.flush()
    return _out(row, secret)


def _out(row: ApiToken, secret: str | None = None) -> TokenOut:
    return TokenOut(id=row.id, name=row.name, role=row.role, created_at=row.created_at, agent=row.agent_name,
                    pools=row.pools, token=secret)


def authenticate(session: Session, secret: str) -> Principal | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.id, row.name, row.role, row.agent_name, tuple(row.pools) if row.pools else None)


def is_active(session: Session, token_id: str) -> bool:
    row = session.get(ApiToken, token_id)
    return row is not None and row.revoked_at is None


def bind_agent(session: Session, principal: Principal, agent_name: str) -> None:
    """An agent token serves one agent: the one named at its creation, else the first that registers with it
    (so a leaked token cannot stand up agents of its own beside the real one)."""
    if principal.agent_name is None:
        # Conditional, so that two first registrations at once cannot both bind the token.
        bound = session.execute(update(ApiToken).where(ApiToken.id == principal.id, ApiToken.agent_name.is_(None))
                                .values(agent_name=agent_name)).rowcount
        if bound:
            return
        principal = replace(principal, agent_name=session.get(ApiToken, principal.id).agent_name)
    if principal.agent_name != agent_name:
        raise Forbidden(f"this token is bound to agent {principal.agent_name!r}, not {agent_name!r}: each agent "
                        "needs its own token (edgefarm tokens create NAME --role agent --agent AGENT)")


def list_tokens(session: Session) -> list[TokenOut]:
    rows = session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at))
    return [_out(r) for r in rows]


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
