"""Dashboard sessions: a user pastes an API token once and gets a cookie that is not the token.

The cookie is `{token_id}.{issued}.{mac}` where mac = HMAC-SHA256 keyed by the gateway's session secret and the
token's stored hash. The secret means a copy of the database is not enough to forge a session; the hash means
revoking the token ends its sessions at once. Gateways of one farm share the secret (EDGEFARM_SESSION_SECRET);
a single gateway makes one and keeps it in its data directory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from edgefarm_gateway.errors import Unauthorized
from edgefarm_gateway.orm import ApiToken
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.tokens import service as tokens
from edgefarm_gateway.tokens.service import Principal

COOKIE = "edgefarm_session"
MAX_AGE_SECONDS = 7 * 24 * 3600
DASHBOARD_ROLES = ("admin", "user")


class LoginRefused(Exception):
    """The pasted token cannot open a dashboard session; the message is shown on the login page."""


def session_secret(settings: Settings) -> bytes:
    """EDGEFARM_SESSION_SECRET, or one made once and kept (0600) in the data directory."""
    if settings.session_secret:
        return settings.session_secret.encode()
    path = settings.data_path / "session-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _mac(key: bytes, token_hash: str, token_id: str, issued: int) -> str:
    return hmac.new(key + token_hash.encode(), f"dashboard:{token_id}.{issued}".encode(), hashlib.sha256).hexdigest()


def login(session: Session, key: bytes, secret: str) -> str:
    """Check a pasted API token; return the cookie value for it."""
    principal = tokens.authenticate(session, secret.strip())
    if principal is None:
        raise LoginRefused("This token is unknown or revoked.")
    if principal.role not in DASHBOARD_ROLES:
        raise LoginRefused(f"A {principal.role} token cannot open the dashboard; use a user or admin token.")
    row = session.get(ApiToken, principal.id)
    issued = int(time.time())
    return f"{principal.id}.{issued}.{_mac(key, row.token_hash, principal.id, issued)}"


def principal_of(session: Session, key: bytes, cookie: str | None) -> Principal | None:
    if not cookie or cookie.count(".") != 2:
        return None
    token_id, issued_text, mac = cookie.split(".")
    if not issued_text.isdigit() or time.time() - int(issued_text) > MAX_AGE_SECONDS:
        return None
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None or row.role not in DASHBOARD_ROLES:
        return None
    if not hmac.compare_digest(mac, _mac(key, row.token_hash, token_id, int(issued_text))):
        return None
    return Principal(row.id, row.name, row.role)


def cookie_principal(request: Request) -> Principal | None:
    """The dashboard's own dependency (the API keeps its bearer tokens): the signed-in user, or None."""
    with request.app.state.db.session(read_only=True) as session:
        return principal_of(session, request.app.state.session_key, request.cookies.get(COOKIE))


def require_cookie_user(principal: Annotated[Principal | None, Depends(cookie_principal)]) -> Principal:
    """For the dashboard's JSON/fragment endpoints: 401, which the page's script turns into a trip to /login."""
    if principal is None:
        raise Unauthorized("not signed in to the dashboard: open /login")
    return principal


PageUserDep = Annotated[Principal | None, Depends(cookie_principal)]
CookieUserDep = Annotated[Principal, Depends(require_cookie_user)]
