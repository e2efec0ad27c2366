"""The last admin token survives two admins revoking each other at once (each authenticated before the other's
revocation landed)."""

from __future__ import annotations

import pytest
from edgefarm.wire import TokenIn
from edgefarm_gateway.db import Database
from edgefarm_gateway.errors import Conflict
from edgefarm_gateway.migrate import upgrade
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.tokens import service


def test_of_two_admins_revoking_each_other_the_second_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    upgrade(settings)
    db = Database(settings)
    try:
        with db.session() as session:
            first = service.create(session, TokenIn(name="first", role="admin"))
            second = service.create(session, TokenIn(name="second", role="admin"))
            callers = {t.id: service.authenticate(session, t.token) for t in (first, second)}
        with db.session() as session:
            service.revoke(session, second.id, callers[first.id])
        with db.session() as session, pytest.raises(Conflict, match="is the last admin token"):
            service.revoke(session, first.id, callers[second.id])
        with db.session() as session:
            assert [t.name for t in service.list_tokens(session)] == ["first"]
    finally:
        db.engine.dispose()
