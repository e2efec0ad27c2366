"""The pipeline driver's error policy, on a database of its own: a database error leaves the pipeline RUNNING
for the next pass (a lock timeout must not fail a good model); any other error fails it with the reason."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from edgefarm.wire import PipelineState
from edgefarm_gateway import migrate
from edgefarm_gateway.db import Database
from edgefarm_gateway.orm import Pipeline
from edgefarm_gateway.pipelines import driver
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.storage import ArtifactStore


@pytest.fixture
def farm_db(tmp_path):
    settings = Settings(data_dir=tmp_path)
    migrate.upgrade(settings)
    database = Database(settings)
    with database.session() as session:
        session.add(Pipeline(id="p1", name="seg", state=PipelineState.RUNNING.value, stage="compiling", spec={},
                             jobs={"compile": "j-gone"}, events=[], owner_id="u1", owner_name="tester"))
    yield settings, database
    database.engine.dispose()


@pytest.mark.parametrize("error, state, reason", [
    (OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked")), PipelineState.RUNNING, None),
    (RuntimeError("a bug"), PipelineState.FAILED, "internal error in the gateway: RuntimeError: a bug"),
])
def test_database_errors_are_retried_and_bugs_fail_the_pipeline(farm_db, monkeypatch, error, state, reason):
    settings, database = farm_db

    def step(*_args):
        raise error

    monkeypatch.setattr(driver, "_step", step)
    driver.advance_all(database, ArtifactStore(settings.data_dir / "artifacts"), settings, lambda: None)
    with database.session() as session:
        pipeline = session.get(Pipeline, "p1")
        assert (pipeline.state, pipeline.failure_reason) == (state.value, reason)
