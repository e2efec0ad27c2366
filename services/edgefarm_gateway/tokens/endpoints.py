from __future__ import annotations

from fastapi import APIRouter, Response

from edgefarm.wire import TokenIn, TokenOut
from edgefarm_gateway.deps import AdminDep, SessionDep
from edgefarm_gateway.errors import error_responses
from edgefarm_gateway.tokens import service

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=error_responses(400, 404, 409))


@router.post("", status_code=201, response_model=TokenOut)
def create_token(body: TokenIn, session: SessionDep, _: AdminDep) -> TokenOut:
    """Create a token. The secret is in this response only; store it. An agent token can be bound to one agent
    (`agent`) and to the device pools it may serve (`pools`)."""
    return service.create(session, body)


@router.get("", response_model=list[TokenOut])
def list_tokens(session: SessionDep, _: AdminDep) -> list[TokenOut]:
    return service.list_tokens(session)


@router.delete("/{token_id}", status_code=204)
def revoke_token(token_id: str, session: SessionDep, caller: AdminDep) -> Response:
    """Revoke a token. 409 for the caller's own token and for the last admin token."""
    service.revoke(session, token_id, caller)
    return Response(status_code=204)
