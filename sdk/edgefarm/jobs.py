"""Jobs: what `submit_*_job` returns. Shaped like qai_hub's so scripts that wait and download port unchanged.

`Job` holds what every job type shares (status, waiting, cancelling); each type adds its own artifacts
(`CompileJob.get_target_model`, `ProfileJob.download_profile`, `InferenceJob.download_output_data`) and
registers itself in `JOB_CLASSES`, which `get_job` uses to return the right class.
"""

from __future__ import annotations

import json
import operator
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np
from numpy.typing import NDArray

from edgefarm._http import ProgressCallback
from edgefarm.datasets import read_npz
from edgefarm.devices import Device
from edgefarm.errors import EdgeFarmError, JobFailedError
from edgefarm.models import Dataset, Model, file_name_for, resolve_destination
from edgefarm.wire import (
    CompileResult,
    InferenceResult,
    JobEvent,
    JobOut,
    JobState,
    JobType,
    Profile,
    TensorSpec,
    Verification,
)

if TYPE_CHECKING:
    from edgefarm.client import Client

# How often `wait` asks: quickly at first (a cache hit finishes at once), then no more than every 2 s.
POLL_FIRST = 0.2
POLL_MAX = 2.0
POLL_GROWTH = 1.5

InputSpecs: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]]


@dataclass(frozen=True)
class JobStatus:
    """A job's state at one moment, like qai_hub's JobStatus: `code` is the state, `message` says why."""

    State: ClassVar[type[JobState]] = JobState  # qai_hub scripts write `JobStatus.State.SUCCESS`

    code: JobState
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.code.finished

    @property
    def success(self) -> bool:
        return self.code == JobState.SUCCESS

    @property
    def failure(self) -> bool:
        """Finished without success: FAILED, or CANCELLED by someone."""
        return self.code in (JobState.FAILED, JobState.CANCELLED)

    @property
    def pending(self) -> bool:
        """Waiting for a worker or a device to take it."""
        return self.code == JobState.CREATED

    @property
    def running(self) -> bool:
        return not self.pending and not self.finished


class Job:
    """A job on the farm. Fixed attributes are plain; `state` and the others reflect the last refresh."""

    job_type: ClassVar[JobType | None] = None

    def __init__(self, client: Client, data: JobOut) -> None:
        self._client = client
        self._data = data
        self.id: str = data.id
        self.job_id: str = data.id
        self.name: str = data.name
        self.model_id: str = data.model_id
        self.device: Device = Device.from_wire(data.device)
        self.options: str = data.options
        self.created_at: datetime = data.created_at
        self._model: Model | None = None

    @property
    def url(self) -> str:
        """The job's page on the farm's dashboard."""
        return f"{self._client.api_url}/jobs/{self.id}"

    @property
    def state(self) -> JobState:
        return self._data.state

    @property
    def failure_reason(self) -> str | None:
        return self._data.failure_reason

    @property
    def events(self) -> list[JobEvent]:
        return self._data.events

    @property
    def data(self) -> JobOut:
        """Everything the farm said about the job at the last refresh."""
        return self._data

    @property
    def model(self) -> Model:
        """The model the job was submitted with (fetched once)."""
        if self._model is None:
            self._model = self._client.models.get(self.model_id)
        return self._model

    def refresh(self) -> Job:
        self._data = JobOut.model_validate(self._client._transport.get(f"/jobs/{self.id}"))
        return self

    def get_status(self) -> JobStatus:
        """The current status; a finished job is not asked again, since it cannot change."""
        if not self._data.state.finished:
            self.refresh()
        return self._status()

    def wait(
        self, timeout: float | None = None, *, on_status: Callable[[JobStatus], None] | None = None
    ) -> JobStatus:
        """Block until the job finishes and return its final status; TimeoutError after `timeout` seconds.

        `on_status` is called with every status seen while waiting (the CLI uses it to show progress).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while True:
            status = self.get_status()
            if on_status is not None:
                on_status(status)
            if status.finished:
                return status
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{type(self).__name__} {self.id} is still {status.code.value} after {timeout:g} s; "
                        "call job.wait() again to keep waiting, or job.cancel() to stop it"
                    )
                delay = min(delay, remaining)
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    def cancel(self) -> JobStatus:
        """Ask the farm to stop the job; returns the new status (CANCELLED unless it had already finished)."""
        self._data = JobOut.model_validate(self._client._transport.post(f"/jobs/{self.id}/cancel"))
        return self._status()

    def _status(self) -> JobStatus:
        data = self._data
        message = data.failure_reason or (data.events[-1].message if data.events else "")
        return JobStatus(code=data.state, message=message)

    def _wait_for_success(self) -> None:
        """Wait; raise JobFailedError unless the job succeeded. Every `get_*`/`download_*` starts here."""
        status = self.wait()
        if not status.success:
            raise JobFailedError(self, status.message or "no reason was recorded")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, state={self.state.value})"


class CompileJob(Job):
    """Converts a model for a device's runtime: `get_target_model()` / `download_target_model(path)`."""

    job_type = JobType.COMPILE

    @property
    def input_specs(self) -> dict[str, TensorSpec] | None:
        return self._data.input_specs

    @property
    def calibration_dataset_id(self) -> str | None:
        return self._data.calibration_dataset_id

    @property
    def target_model_id(self) -> str | None:
        return self._data.target_model_id

    @property
    def result(self) -> CompileResult | None:
        """What the conversion recorded (formats, tensors, sizes, converter, log); None until it succeeded."""
        return CompileResult.model_validate(self._data.result) if self._data.result else None

    @property
    def verification(self) -> Verification | None:
        """How the target was checked against the source (per-output errors, verdict); None until it succeeded.
        A float target that does not match its source never succeeds: the job fails with every strategy's
        reason instead."""
        result = self.result
        return result.verification if result else None

    def get_target_model(self) -> Model:
        """Wait for the job and return the compiled model; JobFailedError if it failed or was cancelled."""
        self._wait_for_success()
        if self.target_model_id is None:
            raise EdgeFarmError(f"compile job {self.id} succeeded without a target model; this is a farm bug")
        return self._client.models.get(self.target_model_id)

    def download_target_model(self, path: str | Path, *, progress: ProgressCallback | None = None) -> Path:
        """Wait, then save the compiled model to `path` (a directory gets a file named after the model)."""
        return self.get_target_model().download(path, progress=progress)


class _DeviceJob(Job):
    """What profile and inference jobs share: they run on one device of the selected pool."""

    @property
    def device_id(self) -> str | None:
        """The device that ran (or runs) the job; None while it waits for one."""
        return self._data.device_id

    @property
    def input_dataset_id(self) -> str | None:
        return self._data.input_dataset_id


class ProfileJob(_DeviceJob):
    """Measures a model on a device: `download_profile()` gives AI Hub's profile dict; `profile` is typed."""

    job_type = JobType.PROFILE

    @property
    def profile(self) -> Profile | None:
        """The measurements as a `wire.Profile`; None until the job succeeded (it does not wait)."""
        if self._data.state != JobState.SUCCESS or not self._data.result:
            return None
        return Profile.model_validate(self._data.result)

    def download_profile(self, path: str | Path | None = None) -> dict[str, Any]:
        """Wait, then return the profile as a dict in AI Hub's shape (`execution_summary`, …).

        Times are in microseconds and memory in bytes, as in AI Hub. With `path` the profile is also saved
        there as JSON (a directory gets `<name>.json`, after the job). JobFailedError if the job failed or was
        cancelled.
        """
        self._wait_for_success()
        profile = self.profile
        if profile is None:
            raise EdgeFarmError(f"profile job {self.id} succeeded without a profile; this is a farm bug")
        data = profile.model_dump(mode="json")
        if path is not None:
            dest = resolve_destination(path, file_name_for(self.name, ".json"))
            dest.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return data


class InferenceJob(_DeviceJob):
    """Runs a model on a device: `download_output_data()` returns `{output_name: [array per sample]}`."""

    job_type = JobType.INFERENCE

    @property
    def result(self) -> InferenceResult | None:
        """Where the outputs are and what was converted on the way; None until the job succeeded."""
        if self._data.state != JobState.SUCCESS or not self._data.result:
            return None
        return InferenceResult.model_validate(self._data.result)

    @property
    def output_dataset_id(self) -> str | None:
        result = self.result
        return result.output_dataset_id if result else None

    def _wait_for_result(self) -> InferenceResult:
        self._wait_for_success()
        result = self.result
        if result is None:
            raise EdgeFarmError(f"inference job {self.id} succeeded without outputs; this is a farm bug")
        return result

    def get_output_dataset(self) -> Dataset:
        """Wait, then return the outputs as a stored `Dataset` (keyed by the source model's output names)."""
        return self._client.datasets.get(self._wait_for_result().output_dataset_id)

    def download_output_data(
        self, path: str | Path | None = None, *, progress: ProgressCallback | None = None
    ) -> dict[str, list[NDArray[Any]]]:
        """Wait, then return the outputs as `{output_name: [array, ...]}`, one array per input sample.

        Names, layout and dtype are the source model's (a quantized or NHWC target's outputs are converted
        back). With `path` the `.npz` is also saved there (a directory gets `<name>_outputs.npz`, after the
        job).
        """
        result = self._wait_for_result()
        url = f"/datasets/{result.output_dataset_id}/download"
        if path is not None:
            dest = resolve_destination(path, file_name_for(f"{self.name} outputs", ".npz"))
            return read_npz(self._client._transport.download(url, dest, progress=progress))
        with tempfile.TemporaryDirectory(prefix="edgefarm-") as tmp:
            return read_npz(
                self._client._transport.download(url, Path(tmp) / "outputs.npz", progress=progress)
            )


class ReferenceJob(InferenceJob):
    """A pipeline's FP32 reference: the source model's outputs on the evaluation inputs, computed by a worker
    with ONNX Runtime. `download_output_data()` as for an inference job."""

    job_type = JobType.REFERENCE


JOB_CLASSES: dict[JobType, type[Job]] = {
    JobType.COMPILE: CompileJob,
    JobType.PROFILE: ProfileJob,
    JobType.INFERENCE: InferenceJob,
    JobType.REFERENCE: ReferenceJob,
}


def job_from_wire(client: Client, data: JobOut) -> Job:
    """The Job subclass for the job's type; a type this SDK does not know yet still gets a working `Job`."""
    return JOB_CLASSES.get(data.type, Job)(client, data)


def normalize_input_specs(specs: InputSpecs | None) -> dict[str, TensorSpec] | None:
    """qai_hub's input_specs to wire TensorSpecs.

    Accepts `{"image": ((1, 3, 256, 256), "float32")}`, `{"image": (1, 3, 256, 256)}` (float32), or the same
    as a list of (name, spec) pairs, which keeps input order explicit.
    """
    if specs is None:
        return None
    if isinstance(specs, (str, bytes)):
        raise TypeError("input_specs must be a dict such as {'image': ((1, 3, 224, 224), 'float32')}")
    items = list(specs.items()) if isinstance(specs, Mapping) else list(specs)
    normalized: dict[str, TensorSpec] = {}
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0]):
            raise ValueError(f"input_specs entries must be (input_name, spec) pairs; got {item!r}")
        name, spec = item
        normalized[name] = _tensor_spec(name, spec)
    return normalized


def _tensor_spec(name: str, spec: Any) -> TensorSpec:
    if isinstance(spec, TensorSpec):
        return spec
    example = (
        f"input_specs[{name!r}] must be (shape, dtype) such as ((1, 3, 224, 224), 'float32'), or a shape"
    )
    if not isinstance(spec, Sequence) or isinstance(spec, str):
        raise TypeError(f"{example}; got {spec!r}")
    if len(spec) == 2 and isinstance(spec[0], Sequence) and not isinstance(spec[0], str):
        shape, dtype = spec
    else:
        shape, dtype = spec, "float32"
    try:
        dims = [operator.index(d) for d in shape]
    except TypeError:
        raise ValueError(f"{example}; the shape must hold integers, got {shape!r}") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"input_specs[{name!r}] shape {dims} must have positive dimensions")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(
            f"input_specs[{name!r}] dtype {dtype!r} is not a numpy dtype such as 'float32'"
        ) from None
    if np_dtype.kind not in "biuf":
        raise ValueError(
            f"input_specs[{name!r}] dtype {np_dtype} is not numeric; use e.g. float32, int8, uint8"
        )
    return TensorSpec(shape=dims, dtype=np_dtype.name)
