"""Pipelines: the delivery loop in one call. `submit_pipeline` returns a `Pipeline`; `wait()` blocks until the
farm has decided, `report` says why, `version` is what was registered (None when a gate failed).

    pipeline = ef.submit_pipeline(model="seg.onnx", name="portrait-seg", devices=[ef.Device("Pixel 8")],
                                  compile_options="--quantize_full_type int8 --quantize_io",
                                  calibration_data={"image": calib}, eval_inputs={"image": images},
                                  ground_truth={"mask": masks}, metric="iou",
                                  gates={"max_metric_drop": 0.01, "max_latency_ms": 30})
    pipeline.wait()
    print(pipeline.state, pipeline.version, pipeline.report["gates"])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from edgefarm._http import ProgressCallback
from edgefarm.datasets import DatasetEntries, DatasetFile, check_inputs, open_dataset_file
from edgefarm.devices import Device, as_device
from edgefarm.jobs import POLL_FIRST, POLL_GROWTH, POLL_MAX, InputSpecs, Job, normalize_input_specs
from edgefarm.metrics import check as check_metric
from edgefarm.models import Dataset, Model, open_model_file
from edgefarm.options import CompileOptions, ProfileOptions, RuntimeOptions
from edgefarm.wire import Gates, MetricSpec, PipelineIn, PipelineOut, PipelineState

if TYPE_CHECKING:
    from edgefarm.client import Client, ListPage

Data = DatasetEntries | Dataset | str


class Pipeline:
    """A pipeline on the farm; `state`, `report` and `version` reflect the last refresh."""

    def __init__(self, client: Client, data: PipelineOut) -> None:
        self._client = client
        self._data = data
        self.id: str = data.id
        self.name: str = data.name

    @property
    def data(self) -> PipelineOut:
        return self._data

    @property
    def state(self) -> PipelineState:
        return self._data.state

    @property
    def stage(self) -> str:
        return self._data.stage

    @property
    def failure_reason(self) -> str | None:
        return self._data.failure_reason

    @property
    def version(self) -> int | None:
        """The registered version number; None until the pipeline passed (and forever if a gate failed)."""
        return self._data.version

    @property
    def report(self) -> dict[str, Any]:
        """The verdict: per device the profile and the metrics, every gate with measured value, threshold and
        verdict (see docs/pipelines.md). Before the evaluation, only `state`, `failure_reason` and `version`."""
        data = self._data
        base: dict[str, Any] = {"devices": [], "gates": [], "passed": False}
        return {**base, **(data.report or {}), "state": data.state.value, "failure_reason": data.failure_reason,
                "version": data.version}

    @property
    def url(self) -> str:
        return f"{self._client.api_url}/pipelines/{self.id}"

    def jobs(self) -> list[Job]:
        """The pipeline's ordinary jobs: compile, FP32 reference, then a profile and an inference per device."""
        ids = self._data.jobs
        wanted = [ids.compile, ids.reference, *ids.profile.values(), *ids.inference.values()]
        return [self._client.jobs.get(job_id) for job_id in wanted if job_id]

    def refresh(self) -> Pipeline:
        self._data = PipelineOut.model_validate(self._client._transport.get(f"/pipelines/{self.id}"))
        return self

    def wait(self, timeout: float | None = None, *,
             on_change: Callable[[Pipeline], None] | None = None) -> PipelineState:
        """Block until the farm has decided; returns SUCCESS (registered), FAILED or CANCELLED.

        TimeoutError after `timeout` seconds. `on_change` is called whenever the stage or state changes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay, seen = POLL_FIRST, None
        while True:
            if not self.state.finished:
                self.refresh()
            if on_change is not None and (self.state, self.stage) != seen:
                seen = (self.state, self.stage)
                on_change(self)
            if self.state.finished:
                return self.state
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"pipeline {self.id} is still {self.stage} after {timeout:g} s; call "
                                       "wait() again to keep waiting, or cancel() to stop it")
                delay = min(delay, remaining)
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    def cancel(self) -> PipelineState:
        self._data = PipelineOut.model_validate(self._client._transport.post(f"/pipelines/{self.id}/cancel"))
        return self.state

    def __repr__(self) -> str:
        version = f", version={self.version}" if self.version is not None else ""
        return f"Pipeline(id={self.id!r}, name={self.name!r}, state={self.state.value}{version})"


class Pipelines:
    def __init__(self, client: Client) -> None:
        self._client = client

    def submit(
        self,
        model: Any,
        name: str,
        devices: Device | str | Sequence[Device | str],
        *,
        eval_inputs: Data,
        metric: str | Mapping[str, Any] | MetricSpec,
        gates: Mapping[str, Any] | Gates,
        ground_truth: Data | None = None,
        reference: Data | None = None,
        input_specs: InputSpecs | None = None,
        compile_options: str = "",
        calibration_data: Data | None = None,
        profile_options: str = "",
        inference_options: str = "",
        progress: ProgressCallback | None = None,
    ) -> Pipeline:
        """Check everything that needs no request, upload what the farm does not have, start the pipeline."""
        CompileOptions.parse(compile_options)
        ProfileOptions.parse(profile_options)
        RuntimeOptions.parse(inference_options)
        spec = _metric_spec(metric)
        gate_spec = Gates.model_validate(dict(gates)) if not isinstance(gates, Gates) else gates
        if not gate_spec.given():
            raise ValueError("gates: give at least one of max_metric_drop, min_metric, max_latency_ms, "
                             "max_model_size_mb, max_peak_memory_mb; without a gate nothing decides the release")
        specs = normalize_input_specs(input_specs)
        pools = [as_device(d).to_wire() for d in ([devices] if isinstance(devices, Device | str) else devices)]
        with ExitStack() as stack:
            files: dict[str, DatasetFile | None] = {}
            for role, data in (("eval inputs", eval_inputs), ("ground truth", ground_truth),
                               ("reference", reference), ("calibration", calibration_data)):
                files[role] = stack.enter_context(open_dataset_file(data)) \
                    if data is not None and not isinstance(data, Dataset) else None
            if specs and files["eval inputs"] is not None:
                check_inputs({n: (shape, dtype) for n, (_, shape, dtype) in files["eval inputs"].entries.items()},
                             [_spec_tensor(n, s) for n, s in specs.items()], argument="eval_inputs")
            source = model if isinstance(model, Model) else self._client.models._upload(
                *stack.enter_context(open_model_file(model)), name=None, progress=progress)
            stored: dict[str, str | None] = {}
            for role, data in (("eval inputs", eval_inputs), ("ground truth", ground_truth),
                               ("reference", reference), ("calibration", calibration_data)):
                if isinstance(data, Dataset):
                    stored[role] = data.id
                elif files[role] is not None:
                    stored[role] = self._client.datasets._upload(files[role], name=f"{name} {role}",
                                                                 progress=progress).id
                else:
                    stored[role] = None
        request = PipelineIn(
            name=name, model_id=source.id, devices=pools, input_specs=specs, compile_options=compile_options,
            calibration_dataset_id=stored["calibration"], profile_options=profile_options,
            inference_options=inference_options, eval_dataset_id=stored["eval inputs"],
            ground_truth_dataset_id=stored["ground truth"], reference_dataset_id=stored["reference"],
            metric=spec, gates=gate_spec)
        # Not idempotent: sent again only when the farm cannot have created it (see _http).
        body = self._client._transport.post("/pipelines", request.model_dump(mode="json"))
        return Pipeline(self._client, PipelineOut.model_validate(body))

    def get(self, pipeline_id: str) -> Pipeline:
        return Pipeline(self._client, PipelineOut.model_validate(
            self._client._transport.get(f"/pipelines/{pipeline_id}")))

    def list(self, *, name: str | None = None, state: PipelineState | str | None = None, offset: int = 0,
             limit: int = 50) -> ListPage[Pipeline]:
        from edgefarm.client import ListPage

        params = {"name": name, "state": PipelineState(state).value if state else None, "offset": offset,
                  "limit": limit}
        page = self._client._transport.get("/pipelines", params)
        return ListPage([Pipeline(self._client, PipelineOut.model_validate(p)) for p in page["items"]],
                        total=page["total"], offset=page["offset"], limit=page["limit"])

    def cancel(self, pipeline_id: str) -> Pipeline:
        pipeline = self.get(pipeline_id)
        pipeline.cancel()
        return pipeline


def _metric_spec(metric: str | Mapping[str, Any] | MetricSpec) -> MetricSpec:
    """`"iou"`, `{"name": "iou", "output": "mask", "threshold": 0.5}` (parameters inline or under "params")."""
    if isinstance(metric, MetricSpec):
        spec = metric
    elif isinstance(metric, str):
        spec = MetricSpec(name=metric)
    else:
        values = dict(metric)
        if "name" not in values:
            raise ValueError(f"metric needs a name, e.g. {{'name': 'iou', 'threshold': 0.5}}; got {values}")
        params = {**values.pop("params", {}),
                  **{k: v for k, v in values.items() if k not in ("name", "output")}}
        spec = MetricSpec(name=values["name"], output=values.get("output"), params=params)
    check_metric(spec.name, spec.params)
    return spec


def _spec_tensor(name: str, spec):
    from edgefarm.wire import TensorInfo

    return TensorInfo(name=name, shape=list(spec.shape), dtype=spec.dtype)
