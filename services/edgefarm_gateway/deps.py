"""Typed FastAPI dependencies: the request's session, the caller, the artifact store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from edgefarm_gateway.errors import Forbidden, Unauthorized
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.storage import ArtifactStore
from edgefarm_gateway.tokens import service as tokens
from edgefarm_gateway.tokens.service import Principal


def get_session(request: Request) -> Iterator[Session]:
    # The request is the unit of work: one session, committed when the endpoint returns. GET requests only read.
    with request.app.state.db.session(read_only=request.method in ("GET", "HEAD")) as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


_bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer ef_…`")


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing API token: send `Authorization: Bearer <token>` "
                           "(on the server, `python -m edgefarm_gateway token --name NAME` creates one)")
    with request.app.state.db.session(read_only=True) as session:
        principal = tokens.authenticate(session, credentials.credentials)
    if principal is None:
        raise Unauthorized("invalid or revoked API token")
    return principal


def require_user(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.role not in ("admin", "user"):
        raise Forbidden(f"a {principal.role} token cannot do this; use a user token")
    return principal


def require_agent(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.role != "agent":
        raise Forbidden("only an agent token can do this (create one with --role agent)")
    return principal


def require_fleet(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """Fetching released models: devices in the field (fleet tokens), and users and admins."""
    if principal.role not in ("fleet", "user", "admin"):
        raise Forbidden(f"a {principal.role} token cannot fetch released models; use a fleet or user token "
                        "(create one with --role fleet)")
    return principal


def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.role != "admin":
        raise Forbidden("only an admin token can do this")
    return principal


# scope="function": commit before the response is sent, so a 201 is only ever said about saved data.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
UserDep = Annotated[Principal, Depends(require_user)]
AdminDep = Annotated[Principal, Depends(require_admin)]
AgentDep = Annotated[Principal, Depends(require_agent)]
FleetDep = Annotated[Principal, Depends(require_fleet)]
