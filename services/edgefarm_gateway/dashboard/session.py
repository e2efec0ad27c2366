"""Dashboard sessions: a user pastes an API token once and gets a cookie that is not the token.

The cookie is `{token_id}.{issued}.{mac}` where mac = HMAC-SHA256(key = the token's stored hash). Only the
token's holder (or the database) knows that hash, so the cookie cannot be forged from its id; it needs no
server-wide secret, so any gateway of a farm accepts it; revoking the token ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from edgefarm_gateway.errors import Unauthorized
from edgefarm_gateway.orm import ApiToken
from edgefarm_gateway.tokens import service as tokens
from edgefarm_gateway.tokens.service import Principal

COOKIE = "edgefarm_session"
MAX_AGE_SECONDS = 7 * 24 * 3600
DASHBOARD_ROLES = ("admin", "user")


class LoginRefused(Exception):
    """The pasted token cannot open a dashboard session; the message is shown on the login page."""


def _mac(token_hash: str, token_id: str, issued: int) -> str:
    return hmac.new(token_hash.encode(), f"dashboard:{token_id}.{issued}".encode(), hashlib.sha256).hexdigest()


def login(session: Session, secret: str) -> str:
    """Check a pasted API token; return the cookie value for it."""
    principal = tokens.authenticate(session, secret.strip())
    if principal is None:
        raise LoginRefused("This token is unknown or revoked.")
    if principal.role not in DASHBOARD_ROLES:
        raise LoginRefused(f"A {principal.role} token cannot open the dashboard; use a user or admin token.")
    row = session.get(ApiToken, principal.id)
    issued = int(time.time())
    return f"{principal.id}.{issued}.{_mac(row.token_hash, principal.id, issued)}"


def principal_of(session: Session, cookie: str | None) -> Principal | None:
    if not cookie or cookie.count(".") != 2:
        return None
    token_id, issued_text, mac = cookie.split(".")
    if not issued_text.isdigit() or time.time() - int(issued_text) > MAX_AGE_SECONDS:
        return None
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None or row.role not in DASHBOARD_ROLES:
        return None
    if not hmac.compare_digest(mac, _mac(row.token_hash, token_id, int(issued_text))):
        return None
    return Principal(row.id, row.name, row.role)


def cookie_principal(request: Request) -> Principal | None:
    """The dashboard's own dependency (the API keeps its bearer tokens): the signed-in user, or None."""
    with request.app.state.db.session() as session:
        return principal_of(session, request.cookies.get(COOKIE))


def require_cookie_user(principal: Annotated[Principal | None, Depends(cookie_principal)]) -> Principal:
    """For the dashboard's JSON/fragment endpoints: 401, which the page's script turns into a trip to /login."""
    if principal is None:
        raise Unauthorized("not signed in to the dashboard: open /login")
    return principal


PageUserDep = Annotated[Principal | None, Depends(cookie_principal)]
CookieUserDep = Annotated[Principal, Depends(require_cookie_user)]
