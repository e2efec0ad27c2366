from __future__ import annotations

import edgefarm.client
import pytest

from tests.sdk.peer import Peer


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """No test sees the developer's ~/.edgefarm or EDGEFARM_* variables, nor another test's default client."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("EDGEFARM_API_URL", "EDGEFARM_API_TOKEN", "EDGEFARM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(edgefarm.client, "_default", None)
    return home


@pytest.fixture
def peer():
    server = Peer().start()
    yield server
    server.stop()
