"""Runs one reference job: the SOURCE model in FP32 on the worker's CPU with ONNX Runtime, over a pipeline's
evaluation inputs. Its outputs are what the device's outputs are compared with.

ONNX Runtime on the CPU is the reference because it runs the ONNX graph as exported, without the converter in
between. A TorchScript source is exported to ONNX first, by the same exporter the compile path uses, so the
reference's output names are the ones the compiled target reports.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from edgefarm.datasets import write_npz
from edgefarm.wire import DatasetEntry, InferenceResult, JobState, TensorSpec
from edgefarm_gateway.datasets import service as datasets
from edgefarm_gateway.errors import FarmError
from edgefarm_gateway.jobs import leases
from edgefarm_gateway.orm import Dataset, Job, Model
from edgefarm_worker.base import WorkerRunner, load_npz
from edgefarm_worker.convert import ConversionError
from edgefarm_worker.convert.converter_log import ConverterLog

log = logging.getLogger(__name__)


class ReferenceFailure(Exception):
    """The source model cannot be run on these inputs; the message says why."""


class ReferenceRunner(WorkerRunner):
    def run(self, job_id: str) -> None:
        token = self.claim(job_id, JobState.RUNNING_INFERENCE)
        if token is None:
            return
        with self.db.session() as session:
            job = session.get(Job, job_id)
            model = session.get(Model, job.model_id)
            dataset = session.get(Dataset, job.input_dataset_id)
            specs = {k: TensorSpec(**v) for k, v in job.input_specs.items()} if job.input_specs else None
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"edgefarm-{job_id}-") as workdir, \
                self.keep_lease(job_id, token):
            try:
                outputs, runtime = run_reference(self.store.path(model.sha256), model.format, specs,
                                                 load_npz(self.store.path(dataset.sha256)), Path(workdir))
            except (ReferenceFailure, ConversionError) as exc:
                leases.fail(self.db, job_id, token, str(exc))
                return
            except Exception as exc:  # a runtime bug must fail the job, not the worker
                log.exception("reference job %s crashed", job_id)
                leases.fail(self.db, job_id, token, f"internal error in the worker: {type(exc).__name__}: {exc}")
                return
        buffer = io.BytesIO()
        write_npz(outputs, buffer)
        seconds = time.monotonic() - started

        def update(session, job: Job) -> None:
            buffer.seek(0)
            stored, _ = datasets.add(session, self.store, buffer, name=f"{job.name} FP32 reference",
                                     max_bytes=self.settings.max_dataset_bytes, owner_id=job.owner_id)
            job.result = InferenceResult(
                output_dataset_id=stored.id, outputs={k: DatasetEntry(**v) for k, v in stored.entries.items()},
                runtime=runtime, seconds=seconds).model_dump(mode="json")

        count = len(next(iter(outputs.values())))
        try:
            done = leases.succeed(self.db, job_id, token, f"{count} sample(s) in FP32 in {seconds:.2f} s", update)
        except FarmError as exc:  # refused by the dataset store (too large, a name it cannot hold): say so once
            leases.fail(self.db, job_id, token, f"the FP32 outputs cannot be stored as a dataset: {exc.detail}")
            return
        if not done:
            log.info("job %s was cancelled or taken over while running; result dropped", job_id)


def run_reference(path: Path, model_format: str, specs: dict[str, TensorSpec] | None,
                  inputs: dict[str, np.ndarray], workdir: Path) -> tuple[dict[str, np.ndarray], str]:
    """The model's outputs for every sample (stacked on axis 0), and the runtime that computed them."""
    import onnxruntime as ort

    if model_format == "torchscript":
        from edgefarm_worker.convert import from_torchscript

        path = from_torchscript.export(path, specs, workdir, ConverterLog())
    elif model_format != "onnx":
        raise ReferenceFailure(f"the FP32 reference runs ONNX or TorchScript source models, not {model_format}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # no fusions that change math
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ReferenceFailure(f"the evaluation inputs have no {', '.join(missing)}; the model takes "
                             f"{', '.join(names)} and the dataset has {', '.join(inputs)}")
    count = len(inputs[names[0]])
    outputs: dict[str, list[np.ndarray]] = {o.name: [] for o in session.get_outputs()}
    for i in range(count):
        try:
            values = session.run(None, {n: inputs[n][i] for n in names})
        except Exception as exc:  # noqa: BLE001  (ONNX Runtime's message names the input and the shape)
            raise ReferenceFailure(f"ONNX Runtime cannot run sample {i} through the source model: "
                                 f"{str(exc).strip().splitlines()[0]}") from None
        for name, value in zip(outputs, values):
            outputs[name].append(value)
    return {name: np.stack(values) for name, values in outputs.items()}, f"onnxruntime {ort.__version__} CPU (FP32)"
