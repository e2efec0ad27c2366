"""Celery tasks. They carry a job id only; the database holds everything else."""

from __future__ import annotations

from edgefarm_gateway.queue import COMPILE_TASK, REFERENCE_TASK
from edgefarm_worker.celery_app import app
from edgefarm_worker.compile import CompileRunner
from edgefarm_worker.reference import ReferenceRunner

_runners: dict[type, CompileRunner | ReferenceRunner] = {}  # one of each per worker process


def _runner(kind: type[CompileRunner] | type[ReferenceRunner]) -> CompileRunner | ReferenceRunner:
    if kind not in _runners:
        _runners[kind] = kind.from_settings()
    return _runners[kind]


@app.task(name=COMPILE_TASK)
def compile_job(job_id: str) -> None:
    _runner(CompileRunner).run(job_id)


@app.task(name=REFERENCE_TASK)
def reference_job(job_id: str) -> None:
    _runner(ReferenceRunner).run(job_id)
