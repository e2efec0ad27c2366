"""One job in a fresh child process: load the model with the planned runtime, then profile it or run inference.

Started by the host backend as `python -m edgefarm_agent.backends JOB_DIR`; reads `request.json`, writes
`outcome.json` (and `outputs.npz`), prints progress lines on stdout; the runtime's own log lines go to stderr,
which the parent keeps as the job's log.

Profile, in order: cold load (timed: the first interpreter/session in this process, delegates applied),
unload, warm load (timed again), warm-up (the first inference timed on its own, the rest untimed), timed
iterations, peak memory read, then the per-op description (LiteRT: the op list and the delegate owning each
op; ONNX Runtime: a separate profiled pass, so the profiler's overhead never touches the headline latency).
"""

from __future__ import annotations

import importlib
import os
import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from edgefarm import __version__
from edgefarm.datasets import write_npz
from edgefarm.options import ProfileOptions
from edgefarm.wire import DeviceSpec, ExecutionSummary, JobType, OpDetail, Profile, TensorInfo

from edgefarm_agent.backends import JobFailure
from edgefarm_agent.backends.feeds import Feeds, dataset_feeds, random_feeds, read_dataset, stack_outputs
from edgefarm_agent.backends.host import (
    OUTCOME_FILE,
    OUTPUTS_FILE,
    REQUEST_FILE,
    ChildOutcome,
    HostJobRequest,
    InferenceOutcomeFields,
    RunPlan,
)
from edgefarm_agent.measure import PeakMemory, latency_stats, microseconds_since, time_iterations, timed_us

# Per-op times of ONNX Runtime come from this many profiled inferences (after one untimed).
DETAIL_RUNS = 20


@dataclass
class Placement:
    """Where the model's ops ran, as the runtime reports it."""

    ops: list[OpDetail]
    delegate: str | None = None
    delegated_ops: int | None = None
    total_ops: int | None = None
    cpu_fallback: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # how the detail was obtained, for `environment`


class Model(Protocol):
    """A loaded model, as litert.py and onnxruntime.py provide it. `invoke` is the only timed call."""

    inputs: list[TensorInfo]
    threads: int

    def set_inputs(self, feeds: Feeds) -> None: ...

    def invoke(self) -> None: ...

    def get_outputs(self) -> Feeds: ...

    def close(self) -> None: ...

    def describe(self, *, feeds: Sequence[Feeds], work_dir: Path, runs: int) -> Placement: ...


class Runtime(Protocol):
    RUNTIME: str

    def open_model(self, path: Path, plan: RunPlan, device: DeviceSpec) -> Model: ...

    def versions(self) -> dict[str, str]: ...


def main(work_dir: Path) -> int:
    _hand_over_signals()
    request = HostJobRequest.model_validate_json((work_dir / REQUEST_FILE).read_text())
    try:
        runtime: Runtime = importlib.import_module(f"edgefarm_agent.backends.{request.plan.runtime}")  # type: ignore[assignment]
        if request.job_type == JobType.PROFILE:
            outcome = ChildOutcome(profile=profile(request, runtime, work_dir))
        else:
            outcome = ChildOutcome(inference=infer(request, runtime, work_dir))
    except JobFailure as exc:
        outcome = ChildOutcome(failure=exc.reason)
    except Exception as exc:  # noqa: BLE001 - a bug here, not a runtime's verdict: keep the traceback
        traceback.print_exc()
        outcome = ChildOutcome(failure=f"the agent failed while running the job: {exc!r} (the log has the traceback)")
    (work_dir / OUTCOME_FILE).write_text(outcome.model_dump_json())
    return 0


def profile(request: HostJobRequest, runtime: Runtime, work_dir: Path) -> Profile:
    options = ProfileOptions.parse(request.options)
    plan = request.plan
    memory = PeakMemory()
    say("loading the model (cold)")
    model, first_load = _timed_load(runtime, request)
    model.close()
    del model
    say("loading the model again (warm)")
    model, warm_load = _timed_load(runtime, request)
    with stage(runtime, "prepare the inputs"):
        feeds = _profile_feeds(request, model)
    one_input = len(feeds) == 1
    with stage(runtime, "take the inputs"):
        model.set_inputs(feeds[0])
    say(f"warming up ({options.warmup_iterations} inferences)")
    with stage(runtime, "run the model"):
        first_inference = timed_us(model.invoke)
        for i in range(1, options.warmup_iterations):
            if not one_input:
                model.set_inputs(feeds[i % len(feeds)])
            model.invoke()
        times = time_iterations(
            model.invoke, max_iterations=options.max_profiler_iterations, max_seconds=options.max_profiler_time,
            before_each=None if one_input else lambda i: model.set_inputs(feeds[i % len(feeds)]),
            on_progress=_every_second(lambda n: f"timed {n} of at most {options.max_profiler_iterations} inferences"),
        )
    peak_memory = memory.peak_bytes()
    say("describing the ops")
    with stage(runtime, "describe the model's ops"):
        placement = model.describe(feeds=feeds, work_dir=work_dir, runs=min(DETAIL_RUNS, len(times)))
    summary = ExecutionSummary(
        estimated_inference_time=float(np.median(times)),
        estimated_inference_peak_memory=peak_memory,
        first_load_time=first_load,
        warm_load_time=warm_load,
        all_inference_times=times,
        first_inference_time=first_inference,
        inference_stats=latency_stats(times),
        iterations=len(times),
        warmup_iterations=max(1, options.warmup_iterations),
        threads=model.threads,
        compute_unit=options.compute_unit,
        delegate=placement.delegate,
        delegated_ops=placement.delegated_ops,
        total_ops=placement.total_ops,
        cpu_fallback=placement.cpu_fallback,
    )
    environment = _environment(runtime, memory)
    environment.update(placement.notes)
    environment["inputs"] = ("the input dataset" if request.inputs_path else
                             "random, seeded (floats uniform in [0, 1), 8/16-bit integers over their range)")
    return Profile(execution_summary=summary, execution_detail=placement.ops, runtime=runtime.RUNTIME,
                   device=request.device, warnings=plan.warnings + placement.warnings, environment=environment)


def infer(request: HostJobRequest, runtime: Runtime, work_dir: Path) -> InferenceOutcomeFields:
    if request.inputs_path is None:
        raise JobFailure("an inference job needs an input dataset, and this one came without")
    start = time.perf_counter_ns()
    say("loading the model")
    model, _ = _timed_load(runtime, request)
    dataset = read_dataset(request.inputs_path)
    with stage(runtime, "prepare the inputs"):
        feeds, conversions = dataset_feeds(dataset, model.inputs, request.compile_result)
    outputs: list[Feeds] = []
    for i, feed in enumerate(feeds):
        with stage(runtime, f"take the inputs of sample {i}"):
            model.set_inputs(feed)
        with stage(runtime, f"run the model on sample {i}"):
            model.invoke()
            outputs.append(model.get_outputs())
        say(f"ran sample {i + 1} of {len(feeds)}")
    stacked, output_conversions = stack_outputs(outputs, request.compile_result)
    with (work_dir / OUTPUTS_FILE).open("wb") as file:
        write_npz(stacked, file)
    return InferenceOutcomeFields(runtime=runtime.RUNTIME, seconds=microseconds_since(start) / 1e6,
                                  conversions=conversions + output_conversions)


@contextmanager
def stage(runtime: Runtime, what: str) -> Iterator[None]:
    """A runtime's exception becomes the job's failure reason: its own message, and what it was doing."""
    try:
        yield
    except JobFailure:
        raise
    except Exception as exc:
        raise JobFailure(f"{runtime.RUNTIME} could not {what}: {exc}") from exc


def say(message: str) -> None:
    print(message, flush=True)


def _timed_load(runtime: Runtime, request: HostJobRequest) -> tuple[Model, float]:
    start = time.perf_counter_ns()
    with stage(runtime, "load the model"):
        model = runtime.open_model(request.model_path, request.plan, request.device)
    return model, microseconds_since(start)


def _profile_feeds(request: HostJobRequest, model: Model) -> list[Feeds]:
    if request.inputs_path is None:
        return [random_feeds(model.inputs)]
    feeds, _ = dataset_feeds(read_dataset(request.inputs_path), model.inputs, request.compile_result)
    return feeds


def _every_second(message: Callable[[int], str]) -> Callable[[int], None]:
    """A progress callback that prints at most once a second: printing is cheap, but not free."""
    last = 0.0

    def report(n: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= 1.0:
            last = now
            say(message(n))

    return report


def _environment(runtime: Runtime, memory: PeakMemory) -> dict[str, Any]:
    return {
        "agent_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **runtime.versions(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory": memory.describe(),
        "load_times": "first_load_time: the first load in a fresh process (delegates applied); "
                      "warm_load_time: loading again in the same process",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _hand_over_signals() -> None:
    """The parent agent decides this job's fate: ignore the signals a terminal or service manager sends the
    whole group, and exit if the parent itself goes away (nobody would read the result)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()
