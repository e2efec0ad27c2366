"""The host backend: runs models on this machine with LiteRT (.tflite) or ONNX Runtime (.onnx).

Each job runs in a fresh child process (`python -m edgefarm_agent.backends JOB_DIR`, see runner.py):

- the profile's numbers are the job's own: the first load is really cold (first interpreter in the process,
  delegate initialisation, weight packing), and the peak memory is not inflated by an earlier job;
- a vendor delegate that crashes (a segfault in an NPU driver) fails one job, not the agent;
- a lost lease or a shutdown stops the job at once by killing the child;
- the agent process itself never imports a runtime, so it stays small on a board.

What the job will use (runtime, unit, delegate, threads) is decided here, before anything is downloaded, so
a device that cannot honour `--compute_unit` refuses the job with a reason naming what it offers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal

from edgefarm.options import OptionsError, ProfileOptions, RuntimeOptions
from edgefarm.wire import CompileResult, DeviceSpec, JobType, Profile
from pydantic import BaseModel

from edgefarm_agent.backends import (
    InferenceOutcome,
    Job,
    JobCancelled,
    JobFailure,
    JobSpec,
    Outcome,
    ProfileOutcome,
    ProgressCallback,
)
from edgefarm_agent.config import DeviceConfig, ExternalDelegate
from edgefarm_agent.config import HostBackend as HostSettings

REQUEST_FILE, OUTCOME_FILE, OUTPUTS_FILE, LOG_FILE = "request.json", "outcome.json", "outputs.npz", "runtime.log"
LOG_TAIL_BYTES = 64 * 1024
# Preference when --compute_unit all: the most capable unit the device has.
ALL_UNITS = ("npu", "gpu", "cpu")


class RunPlan(BaseModel):
    """How the child runs the model; decided by `plan()` from the job's options and the device's config."""

    runtime: Literal["litert", "onnxruntime"]
    compute_unit: str  # what the job asked: cpu | gpu | npu | all
    unit: Literal["cpu", "gpu", "npu"]  # the unit chosen to run the model
    delegate: ExternalDelegate | None = None  # the device's delegate for `unit` (npu, gpu)
    xnnpack: bool = True  # LiteRT's default CPU delegate for whatever stays on the CPU
    threads: int | None = None  # None: the runtime's own default
    warnings: list[str] = []


class HostJobRequest(BaseModel):
    """Everything the child needs, written as JSON to the job directory."""

    job_type: JobType
    model_path: Path
    inputs_path: Path | None
    options: str
    device: DeviceSpec
    compile_result: CompileResult | None
    plan: RunPlan


class InferenceOutcomeFields(BaseModel):
    runtime: str
    seconds: float
    conversions: list[str]


class ChildOutcome(BaseModel):
    """What the child writes back: exactly one of the three."""

    profile: Profile | None = None
    inference: InferenceOutcomeFields | None = None
    failure: str | None = None


def plan(device: DeviceConfig, spec: JobSpec) -> RunPlan:
    """Pick the runtime, unit and delegate for a job, or raise JobFailure saying what the device offers."""
    settings = device.backend
    try:
        options = (ProfileOptions if spec.job_type == JobType.PROFILE else RuntimeOptions).parse(spec.options)
    except OptionsError as exc:
        raise JobFailure(f"cannot read the job's options {spec.options!r}: {exc}") from None
    threads = options.threads or settings.threads
    where = f"device {device.name!r} (serial {device.serial})"
    model_format = spec.model_format
    if model_format == "onnx":
        if options.compute_unit not in ("cpu", "all"):
            raise JobFailure(f"{where} runs ONNX models with ONNX Runtime on its CPU only; "
                             f"--compute_unit {options.compute_unit} needs a TFLite model"
                             f"{_delegate_hint(settings, options.compute_unit)}. Use --compute_unit cpu or all")
        warnings = ["--tflite_delegates applies to TFLite models; ignored for this ONNX model"
                    ] if options.tflite_delegates else []
        return RunPlan(runtime="onnxruntime", compute_unit=options.compute_unit, unit="cpu", xnnpack=False,
                       threads=threads, warnings=warnings)
    if model_format != "tflite":
        raise JobFailure(f"{where} runs .tflite and .onnx models, not {model_format}; compile the model first "
                         "(submit_compile_job with --target_runtime tflite or onnx)")
    return _plan_tflite(settings, options, where, threads)


def _plan_tflite(settings: HostSettings, options: RuntimeOptions, where: str, threads: int | None) -> RunPlan:
    asked = options.tflite_delegates
    xnnpack = not (asked and "none" in asked)
    names = [n for n in asked or [] if n != "none"]
    if names:
        # --tflite_delegates names candidates in order of preference; --compute_unit (unless all) narrows them.
        units = [unit for name in names for unit in _units_of(name, settings)]
        if options.compute_unit != "all":
            units = [unit for unit in units if unit == options.compute_unit]
    elif asked:  # only "none": plain CPU kernels, or the asked unit's delegate with plain kernels for the rest
        units = ["cpu"] if options.compute_unit in ("all", "cpu") else [options.compute_unit]
    else:
        units = list(ALL_UNITS) if options.compute_unit == "all" else [options.compute_unit]
    for unit in units:
        delegate = settings.delegate_for(unit)
        if unit == "cpu" or delegate is not None:
            return RunPlan(runtime="litert", compute_unit=options.compute_unit, unit=unit, delegate=delegate,
                           xnnpack=xnnpack, threads=threads)
    asked_text = f"--compute_unit {options.compute_unit}" + (f" --tflite_delegates {','.join(asked)}" if asked else "")
    raise JobFailure(f"{where} cannot run this job as asked ({asked_text}): it offers {_offers(settings)}. "
                     "Submit with one of those, or pick a device whose attributes include the accelerator")


def _units_of(delegate_name: str, settings: HostSettings) -> list[str]:
    """The units a --tflite_delegates name can mean on this device."""
    if delegate_name == "xnnpack":
        return ["cpu"]
    if delegate_name == "gpu":
        return ["gpu"]
    if delegate_name == "external":
        return [unit for unit in ("npu", "gpu") if settings.delegate_for(unit) is not None] or ["npu"]
    return []  # nnapi: an Android delegate, never on a host


def _offers(settings: HostSettings) -> str:
    offers = ["cpu (XNNPACK or plain kernels)"]
    offers += [f"{unit} ({delegate.label})" for unit in ("npu", "gpu") if (delegate := settings.delegate_for(unit))]
    return ", ".join(offers)


def _delegate_hint(settings: HostSettings, unit: str) -> str:
    delegate = settings.delegate_for(unit)
    return f" (this device's {unit} is driven by the LiteRT delegate {delegate.label})" if delegate else ""


class HostBackend:
    def __init__(self, device: DeviceConfig, *, python: str = sys.executable) -> None:
        self.device = device
        self.python = python

    def check(self, spec: JobSpec) -> None:
        plan(self.device, spec)

    def run(self, job: Job, *, cancelled: threading.Event, progress: ProgressCallback) -> Outcome:
        request = HostJobRequest(
            job_type=job.spec.job_type, model_path=job.model_path, inputs_path=job.inputs_path,
            options=job.spec.options, device=job.device, compile_result=job.spec.compile_result,
            plan=plan(self.device, job.spec),
        )
        (job.work_dir / REQUEST_FILE).write_text(request.model_dump_json())
        returncode = self._run_child(job.work_dir, cancelled, progress)
        log = _tail(job.work_dir / LOG_FILE)
        outcome_path = job.work_dir / OUTCOME_FILE
        if returncode != 0 or not outcome_path.exists():
            raise JobFailure(f"the {request.plan.runtime} process on device {self.device.name!r} died "
                             f"({_exit_text(returncode)}) before reporting; its log has the runtime's last words",
                             log)
        outcome = ChildOutcome.model_validate_json(outcome_path.read_text())
        if outcome.failure is not None:
            raise JobFailure(outcome.failure, log)
        if outcome.profile is not None:
            return ProfileOutcome(outcome.profile, log)
        assert outcome.inference is not None
        return InferenceOutcome(job.work_dir / OUTPUTS_FILE, outcome.inference.runtime, outcome.inference.seconds,
                                outcome.inference.conversions, log)

    def _run_child(self, work_dir: Path, cancelled: threading.Event, progress: ProgressCallback) -> int:
        with (work_dir / LOG_FILE).open("wb") as log:
            # Its own session: a Ctrl-C in the agent's terminal reaches the agent, which decides the job's fate.
            child = subprocess.Popen([self.python, "-m", "edgefarm_agent.backends", str(work_dir)],
                                     stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
            reader = threading.Thread(target=_relay_progress, args=(child, progress), daemon=True)
            reader.start()
            try:
                while True:
                    try:
                        returncode = child.wait(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired:
                        if cancelled.is_set():
                            child.kill()
                            child.wait()
                            raise JobCancelled() from None
            finally:
                reader.join(timeout=5)
        return returncode


def _relay_progress(child: subprocess.Popen[bytes], progress: ProgressCallback) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        text = line.decode(errors="replace").strip()
        if text:
            progress(text)


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - LOG_TAIL_BYTES))
            text = file.read().decode(errors="replace")
    except OSError:
        return ""
    return text if size <= LOG_TAIL_BYTES else "…(earlier lines cut)\n" + text
