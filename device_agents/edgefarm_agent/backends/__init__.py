"""Device backends: how one device runs a leased job.

A backend gets the job's files once the agent has downloaded them and returns a profile or inference outputs.
It never talks to the gateway: the agent loop renews the lease, and sets `cancelled` when the lease is lost or
the agent must stop, after which `run` must return promptly by raising JobCancelled.

    check(spec)   → raise JobFailure when this device cannot run the job as asked (before any download)
    run(job, cancelled=..., progress=...) → ProfileOutcome | InferenceOutcome, or raise JobFailure

`host` runs models on this machine (LiteRT, ONNX Runtime); `android` runs TFLite's benchmark_model on a phone
over ADB (android.py), behind a `type = "android"` config table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edgefarm.wire import CompileResult, DeviceSpec, JobType, Lease, Profile

from edgefarm_agent.config import DeviceConfig


class JobFailure(Exception):
    """The job cannot succeed on this device. `reason` is the runtime's own message plus what failed,
    for a person to act on; `log` is whatever the run printed."""

    def __init__(self, reason: str, log: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log = log


class JobCancelled(Exception):
    """The run stopped because `cancelled` was set; nothing is to be reported."""


@dataclass(frozen=True)
class JobSpec:
    """What a job asks for, as the lease says it."""

    job_type: JobType
    model_format: str  # tflite | onnx | torchscript
    options: str = ""
    compile_result: CompileResult | None = None  # set when the model is a compiled target

    @classmethod
    def from_lease(cls, lease: Lease) -> JobSpec:
        return cls(lease.job_type, lease.model.format, lease.options, lease.compile_result)


@dataclass(frozen=True)
class Job:
    spec: JobSpec
    device: DeviceSpec
    model_path: Path
    inputs_path: Path | None  # the input dataset (.npz), when the job has one
    work_dir: Path  # private to this job, removed afterwards


@dataclass(frozen=True)
class ProfileOutcome:
    profile: Profile
    log: str = ""


@dataclass(frozen=True)
class InferenceOutcome:
    outputs_path: Path  # .npz keyed by the source model's output names, samples stacked on axis 0
    runtime: str
    seconds: float
    conversions: list[str] = field(default_factory=list)
    log: str = ""


Outcome = ProfileOutcome | InferenceOutcome
ProgressCallback = Callable[[str], None]


class Backend(Protocol):
    def check(self, spec: JobSpec) -> None: ...

    def run(self, job: Job, *, cancelled: threading.Event, progress: ProgressCallback) -> Outcome: ...


def build_backend(device: DeviceConfig) -> Backend:
    if device.backend.type == "android":
        from edgefarm_agent.backends.android import AndroidBackend  # adb-shell: imported only when a phone is set

        return AndroidBackend(device)
    from edgefarm_agent.backends.host import HostBackend

    return HostBackend(device)
