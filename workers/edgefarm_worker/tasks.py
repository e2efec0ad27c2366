"""Celery tasks. They carry a job id only; the database holds everything else."""

from __future__ import annotations

from edgefarm_gateway.queue import COMPILE_TASK
from edgefarm_worker.celery_app import app
from edgefarm_worker.compile import CompileRunner

_runner: CompileRunner | None = None


@app.task(name=COMPILE_TASK)
def compile_job(job_id: str) -> None:
    global _runner
    if _runner is None:  # one per worker process: its database pool and store are reused across jobs
        _runner = CompileRunner.from_settings()
    _runner.run(job_id)
