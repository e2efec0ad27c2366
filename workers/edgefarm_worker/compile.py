"""Runs one compile job: claim it, hold the lease while converting, store the target, record the result."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from edgefarm.options import CompileOptions
from edgefarm.wire import CompileResult, JobState, TensorSpec
from edgefarm_gateway.jobs import leases, repository
from edgefarm_gateway.models import service as models
from edgefarm_gateway.orm import Dataset, Job, Model
from edgefarm_worker.base import WorkerRunner, load_npz
from edgefarm_worker.convert import CompileRequest, ConversionError, compile_model, strategies

log = logging.getLogger(__name__)


class CompileRunner(WorkerRunner):
    def run(self, job_id: str) -> None:
        token = self.claim(job_id, JobState.OPTIMIZING_MODEL)
        if token is None:
            return
        with self.db.session() as session:
            job = session.get(Job, job_id)
            model = session.get(Model, job.model_id)
            dataset = session.get(Dataset, job.calibration_dataset_id) if job.calibration_dataset_id else None
            # A compile job's input dataset holds the user's verification inputs.
            checks = session.get(Dataset, job.input_dataset_id) if job.input_dataset_id else None
            preferred = repository.winning_strategy(session, job)
            crashed = strategies.crashed([e.message for e in job.events])
        with tempfile.TemporaryDirectory(prefix=f"edgefarm-{job_id}-") as workdir, \
                self.keep_lease(job_id, token):
            request = CompileRequest(
                source_path=self.store.path(model.sha256), source_format=model.format,
                options=CompileOptions.parse(job.options),
                input_specs={k: TensorSpec(**v) for k, v in job.input_specs.items()} if job.input_specs else None,
                calibration=load_npz(self.store.path(dataset.sha256)) if dataset else None,
                workdir=Path(workdir),
                verification=load_npz(self.store.path(checks.sha256)) if checks else None,
                preferred_strategy=preferred,
                crashed_strategies=crashed,
                progress=lambda message: leases.note(self.db, job_id, token, message))
            started = time.monotonic()
            try:
                compiled = compile_model(request)
            except ConversionError as exc:
                leases.fail(self.db, job_id, token, str(exc))
                return
            except (Exception, SystemExit) as exc:  # a converter bug must fail the job, not the worker
                log.exception("compile job %s crashed the converter", job_id)
                leases.fail(self.db, job_id, token, f"internal error in the compile worker: "
                                                    f"{type(exc).__name__}: {exc}")
                return
            sha256, size = self.store.put_file(compiled.path)
        self._record(job_id, token, compiled.result, sha256, size, time.monotonic() - started)

    def _record(self, job_id: str, token: str, result: CompileResult, sha256: str, size: int,
                seconds: float) -> None:
        def update(session, job: Job) -> None:
            target = models.add_compiled(session, name=job.name, format=result.target_format, sha256=sha256,
                                         size=size, inputs=result.target_inputs, outputs=result.target_outputs,
                                         job_id=job.id, owner_id=job.owner_id)
            job.target_model_id = target.id
            job.result = result.model_dump(mode="json")

        if not leases.succeed(self.db, job_id, token, f"compiled in {seconds:.1f} s", update):
            log.info("job %s was cancelled or taken over while converting; result dropped", job_id)
