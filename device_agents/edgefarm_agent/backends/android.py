"""The Android backend: TFLite's `benchmark_model` on a phone over ADB (adb-shell: no adb server, no adb binary).

A profile job, in order: connect (the agent's RSA key; the phone asks once to allow it), read the conditions
(battery, thermal status and zones, CPU frequencies), make a per-job directory under `remote_dir`, push the
model, `benchmark_model` and any delegate libraries, chmod, run `benchmark_model` with flags from the job's
options, read the conditions again, and remove the job directory whatever happened.

An inference job reads the model's input and output tensors from the .tflite flatbuffer (no runtime is loaded
in the agent), turns the input dataset into each sample's target tensors (feeds.py: quantized and transposed as
the compile job recorded), pushes them as raw files and runs `benchmark_model` once per sample with
`--input_layer_value_files` and `--output_filepath` (TFLite 2.14+), one `&&` chain per batch of samples. Each
output file (every output tensor's bytes, in the model's output order) is pulled back, split and brought back
to the source model's names and layout.

adb-shell returns one stream with stdout and stderr mixed and no exit status, so each command that matters
ends with `; echo __EXIT__$?` and the status is read back from the output; a missing marker means the process
(or the connection) died. The numbers come from benchmark_model's own output (benchmark_output.py): it
prints aggregate statistics, not each iteration, so `all_inference_times` stays empty and `environment`
says how median/p90/p99 were obtained.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgefarm.datasets import write_npz
from edgefarm.options import OptionsError, ProfileOptions, RuntimeOptions
from edgefarm.wire import ExecutionSummary, JobType, LatencyStats, OpDetail, Profile, TensorInfo

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
from edgefarm_agent.backends.adb import AdbSession
from edgefarm_agent.backends.benchmark_output import BenchmarkOutput, RunStats, parse_benchmark_output
from edgefarm_agent.backends.feeds import Feeds, dataset_feeds, random_feeds, read_dataset, stack_outputs
from edgefarm_agent.backends.tflite_io import DYNAMIC, TfliteIO, read_tflite_io
from edgefarm_agent.config import AndroidBackend as AndroidSettings
from edgefarm_agent.config import DeviceConfig

logger = logging.getLogger(__name__)

BINARY = "benchmark_model"
XNNPACK_NAMES = ("TfLiteXNNPackDelegate", "XNNPACK")
OUTPUTS_FILE = "outputs.npz"
# Printed before each sample's run, so progress and a failure can name the sample.
SAMPLE_MARKER = "edgefarm: sample "
# Samples run as one `&&` chain per batch: bounded so the shell command (the ADB OPEN message) stays small and the
# phone never holds more than one batch's input and output files.
MAX_BATCH_SAMPLES = 32
MAX_BATCH_BYTES = 256 * 1024 * 1024
# One sample's run prints nothing while it loads the model and compiles it for a delegate.
SAMPLE_SILENCE_SECONDS = 600


@dataclass
class AndroidPlan:
    """How benchmark_model runs the job: the unit, the delegate label, the flags, the libraries to push."""

    compute_unit: str  # as asked
    unit: str  # cpu | gpu | npu
    delegate: str | None  # XNNPACK, GPU, NNAPI or the external delegate's file name; None: plain CPU kernels
    flags: list[str] = field(default_factory=list)  # without --graph (the job directory is known later)
    threads: int | None = None
    external: Path | None = None  # the external delegate library on this machine
    options: RuntimeOptions = field(default_factory=ProfileOptions)  # ProfileOptions for a profile job


def plan(device: DeviceConfig, spec: JobSpec) -> AndroidPlan:
    settings = _settings(device)
    where = f"device {device.name!r} (serial {device.serial})"
    if spec.job_type not in (JobType.PROFILE, JobType.INFERENCE):
        raise JobFailure(f"{where} is an Android phone: it runs profile and inference jobs, not {spec.job_type.value}")
    if spec.model_format != "tflite":
        raise JobFailure(f"{where} runs .tflite models with benchmark_model, not {spec.model_format}; compile the "
                         "model first (submit_compile_job with --target_runtime tflite)")
    try:
        options = (ProfileOptions if spec.job_type == JobType.PROFILE else RuntimeOptions).parse(spec.options)
    except OptionsError as exc:
        raise JobFailure(f"cannot read the job's options {spec.options!r}: {exc}") from None
    asked = options.tflite_delegates or []
    xnnpack = "none" not in asked
    names = [n for n in asked if n != "none"]
    external_label = settings.npu.label if settings.npu else None
    candidates: list[tuple[str, str | None]]  # (unit, delegate)
    if names:
        by_name = {"xnnpack": ("cpu", "XNNPACK"), "gpu": ("gpu", "GPU"), "nnapi": ("npu", "NNAPI"),
                   "external": ("npu", external_label)}
        candidates = [by_name[n] for n in names if n in by_name]
        if options.compute_unit != "all":
            candidates = [c for c in candidates if c[0] == options.compute_unit]
        if ("npu", None) in candidates:
            raise JobFailure(f"{where} has no external delegate configured ([devices.backend.npu] library); "
                             "--tflite_delegates external needs one. NNAPI is available: --tflite_delegates nnapi")
    elif options.compute_unit == "cpu":
        candidates = [("cpu", "XNNPACK" if xnnpack else None)]
    elif options.compute_unit == "gpu":
        candidates = [("gpu", "GPU")]
    elif options.compute_unit == "npu":
        candidates = [("npu", external_label or "NNAPI")]
    else:  # all: the NPU when a vendor delegate is configured, else the CPU (the GPU delegate is opt-in)
        candidates = [("npu", external_label)] if external_label else [("cpu", "XNNPACK" if xnnpack else None)]
    if not candidates:
        raise JobFailure(f"{where} cannot run this job as asked (--compute_unit {options.compute_unit} "
                         f"--tflite_delegates {','.join(asked)}): it offers cpu (XNNPACK), gpu (GPU delegate), "
                         f"npu ({external_label or 'NNAPI'})")
    unit, delegate = candidates[0]
    threads = options.threads or settings.threads
    flags = _run_flags(options)
    if threads:
        flags.append(f"--num_threads={threads}")
    external = None
    if delegate == "GPU":
        flags.append("--use_gpu=true")
    elif delegate == "NNAPI":
        flags.append("--use_nnapi=true")
    elif unit == "npu" and settings.npu is not None:
        external = settings.npu.library
        flags.append(f"--external_delegate_path={settings.npu.library.name}")
        if settings.npu.options:
            flags.append("--external_delegate_options=" + ";".join(
                f"{k}:{_option_text(v)}" for k, v in settings.npu.options.items()))
    # benchmark_model applies delegates in the order their flags appear: XNNPACK goes last, so the GPU or NPU
    # delegate asked for gets first pick and XNNPACK only takes the ops it left to the CPU.
    flags.append(f"--use_xnnpack={'true' if xnnpack else 'false'}")
    return AndroidPlan(compute_unit=options.compute_unit, unit=unit, delegate=delegate, flags=flags,
                       threads=threads, external=external, options=options)


class AndroidBackend:
    def __init__(self, device: DeviceConfig, *, identify: bool = True) -> None:
        self.device = device
        self.settings = _settings(device)
        self.key_path = (self.settings.adb_key or device.agent_work_dir / "adbkey").expanduser()
        if identify:
            try:
                with self.session() as session:
                    session.identify()
            except JobFailure as exc:
                logger.warning("%s: not identified yet (%s); it registers with its configured attributes and is "
                               "identified at its first job", device.name, exc.reason)

    # -- the Backend interface -----------------------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        plan(self.device, spec)

    def run(self, job: Job, *, cancelled: threading.Event, progress: ProgressCallback) -> Outcome:
        job_plan = plan(self.device, job.spec)
        for path in (self.settings.benchmark_model, *self.settings.libraries,
                     *([job_plan.external] if job_plan.external else [])):
            if not path.is_file():
                raise JobFailure(f"device {self.device.name!r}: {path} does not exist on the agent's machine; "
                                 "set the path in the agent config ([devices.backend])")
        if job.spec.job_type == JobType.INFERENCE:
            return self._infer(job, job_plan, cancelled, progress)
        progress("connecting to the phone")
        with self.session() as session:
            props = session.identify()
            remote = self._job_dir()
            before = session.conditions()
            try:
                output, status = self._benchmark(session, job, job_plan, remote, cancelled, progress)
                after = session.conditions()
            finally:
                session.remove(remote)
        return ProfileOutcome(self._profile(job, job_plan, output, status, props, before, after), output)

    # -- steps ---------------------------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[AdbSession]:
        session = AdbSession(self.device, self.settings, self.key_path)
        session.connect()
        try:
            yield session
        finally:
            session.close()

    def _job_dir(self) -> str:
        return f"{self.settings.remote_dir}/job-{uuid.uuid4().hex[:12]}"

    def _push_tools(self, session: AdbSession, job: Job, job_plan: AndroidPlan, remote: str,
                    progress: ProgressCallback) -> None:
        session.run_checked(f"mkdir -p {shlex.quote(remote)}", "make the job directory")
        progress("pushing the model and benchmark_model to the phone")
        session.push(job.model_path, f"{remote}/model.tflite", executable=False)
        pushes = [(self.settings.benchmark_model, BINARY)]
        pushes += [(library, library.name) for library in self.settings.libraries]
        if job_plan.external is not None:
            pushes.append((job_plan.external, job_plan.external.name))
        for local, name in pushes:
            session.push(local, f"{remote}/{name}", executable=True)
        session.run_checked(f"chmod 755 {shlex.quote(remote + '/' + BINARY)}", "make benchmark_model executable")

    def _benchmark(self, session: AdbSession, job: Job, job_plan: AndroidPlan, remote: str,
                   cancelled: threading.Event, progress: ProgressCallback) -> tuple[str, int]:
        self._push_tools(session, job, job_plan, remote, progress)
        if cancelled.is_set():
            raise JobCancelled()
        argv = [f"--graph={remote}/model.tflite", *job_plan.flags]
        command = f"cd {shlex.quote(remote)} && {_launcher(remote)} {' '.join(shlex.quote(a) for a in argv)} 2>&1"
        progress("running benchmark_model on the phone")
        assert isinstance(job_plan.options, ProfileOptions)
        timeout = job_plan.options.max_profiler_time + 600  # plus model load, delegate compilation, warm-up
        return session.run_streaming(command, timeout=timeout, cancelled=cancelled, on_line=_progress_lines(progress))

    def _infer(self, job: Job, job_plan: AndroidPlan, cancelled: threading.Event,
               progress: ProgressCallback) -> InferenceOutcome:
        start = time.monotonic()
        # Everything that can be wrong with the model or the data fails here, before the phone is touched.
        model = read_tflite_io(job.model_path)
        samples, conversions = _input_samples(job, model.inputs)
        progress("connecting to the phone")
        with self.session() as session:
            session.identify()
            remote = self._job_dir()
            try:
                self._push_tools(session, job, job_plan, remote, progress)
                outputs, log = self._run_samples(session, job, job_plan, model, samples, remote, cancelled,
                                                 progress)
            finally:
                session.remove(remote)
        stacked, output_conversions = stack_outputs(outputs, job.spec.compile_result)
        outputs_path = job.work_dir / OUTPUTS_FILE
        with outputs_path.open("wb") as file:
            write_npz(stacked, file)
        runtime = (f"tflite benchmark_model ({self.settings.benchmark_model.name}), "
                   f"{job_plan.delegate + ' delegate' if job_plan.delegate else 'plain CPU kernels'}")
        return InferenceOutcome(outputs_path, runtime, time.monotonic() - start, conversions + output_conversions,
                                log)

    def _run_samples(self, session: AdbSession, job: Job, job_plan: AndroidPlan, model: TfliteIO,
                     samples: list[Feeds], remote: str, cancelled: threading.Event,
                     progress: ProgressCallback) -> tuple[list[Feeds], str]:
        """Batch by batch: push the inputs, run the chain, pull and split the outputs, remove the batch's files."""
        local = job.work_dir / "phone"
        local.mkdir(exist_ok=True)
        outputs: list[Feeds] = []
        log = ""
        for batch in _batches(samples, sum(_nbytes(info) for info in model.outputs)):
            if cancelled.is_set():
                raise JobCancelled()
            progress(f"pushing the inputs of samples {batch.start + 1}-{batch.stop} of {len(samples)}")
            files = _push_samples(session, model.inputs, samples, batch, local, remote)
            command = _samples_command(job_plan, model, samples, batch, remote)
            output, status = session.run_streaming(command, timeout=SAMPLE_SILENCE_SECONDS, cancelled=cancelled,
                                                   on_line=_progress_lines(progress))
            log += output
            if status != 0:
                raise self._sample_failure(output, status, log)
            if cancelled.is_set():
                raise JobCancelled()
            progress(f"pulling the outputs of samples {batch.start + 1}-{batch.stop} of {len(samples)}")
            for i in batch:
                outputs.append(self._sample_outputs(session, remote, i, model.outputs, log))
            files += [_output_file(i) for i in batch]
            session.run_checked("rm -f " + " ".join(shlex.quote(f"{remote}/{name}") for name in files),
                                "remove a finished batch's files")
        return outputs, log

    def _sample_failure(self, output: str, status: int, log: str) -> JobFailure:
        """The failing sample (the last marker printed) and benchmark_model's last words about it."""
        _, marker, after = output.rpartition(SAMPLE_MARKER)
        sample, _, own_output = after.partition("\n") if marker else ("", "", output)
        tail = parse_benchmark_output(own_output).errors[-3:] or own_output.strip().splitlines()[-3:] or ["no output"]
        on_sample = f" on sample {sample.strip()}" if sample else ""
        return JobFailure(f"benchmark_model on {self.device.name!r} {_exit_text(status)}{on_sample}: "
                          f"{' | '.join(tail)}", log)

    def _sample_outputs(self, session: AdbSession, remote: str, sample: int, outputs: Sequence[TensorInfo],
                        log: str) -> Feeds:
        data = session.pull(f"{remote}/{_output_file(sample)}")
        if data is None:
            raise JobFailure(f"benchmark_model on {self.device.name!r} ran sample {sample + 1} but wrote no output "
                             f"file: {self._too_old()}", log)
        sizes = [_nbytes(info) for info in outputs]
        if len(data) != sum(sizes):
            dynamic = [info.name for info in outputs if DYNAMIC in info.shape]
            if dynamic:
                cause = (f"outputs {', '.join(map(repr, dynamic))} have shapes that depend on the input, and a raw "
                         "output file does not say which; run this model on a host device")
            elif len(data) < sum(sizes):
                cause = self._too_old()
            else:
                cause = "the model's outputs took more room than its flatbuffer declares"
            raise JobFailure(f"benchmark_model on {self.device.name!r} wrote {len(data)} bytes of outputs for sample "
                             f"{sample + 1}, not the {sum(sizes)} the model's outputs take "
                             f"({', '.join(f'{i.name} {i.dtype} {i.shape}' for i in outputs)}): {cause}", log)
        return _split_outputs(data, outputs, sizes)

    def _too_old(self) -> str:
        binary = self.settings.benchmark_model
        return (f"{binary.name} ({binary}) probably predates --output_filepath, which inference needs (TFLite 2.14 "
                "or newer; an older build only warns about the unknown flag and writes nothing). Set "
                "benchmark_model in the agent config to a newer build")

    def _profile(self, job: Job, job_plan: AndroidPlan, output: str, status: int, props: dict[str, str],
                 before: dict[str, Any], after: dict[str, Any]) -> Profile:
        name = self.device.name
        result = parse_benchmark_output(output)
        if status != 0:
            tail = result.errors[-3:] or output.strip().splitlines()[-3:] or ["no output"]
            raise JobFailure(f"benchmark_model on {name!r} {_exit_text(status)}: {' | '.join(tail)}", output)
        stats = result.inference
        delegated, total, fallback, warnings = _delegation(job_plan, result)
        if (stats is None or stats.avg is None) and result.inference_avg_us is not None:
            # An older build prints only `Average inference timings in us: …, no stats: AVG`: no count, no spread.
            stats = RunStats(count=job_plan.options.max_profiler_iterations, avg=result.inference_avg_us)
            warnings.append(f"{self.settings.benchmark_model.name} printed only the average of the timed runs "
                            "(an older build): min, median, p90 and p99 are that average, std is unknown")
        if stats is None or stats.avg is None:
            raise JobFailure(f"benchmark_model on {name!r} printed no timings (an unknown output format?)", output)
        median = stats.extra.get("median", stats.avg)
        p90 = stats.extra.get("p90", stats.max if stats.max is not None else stats.avg)
        p99 = stats.extra.get("p99", stats.max if stats.max is not None else stats.avg)
        latency = LatencyStats(min=stats.min if stats.min is not None else stats.avg, median=median, mean=stats.avg,
                               p90=p90, p99=p99, std=stats.std or 0.0)
        init = result.init_us or 0.0
        summary = ExecutionSummary(
            estimated_inference_time=median,
            estimated_inference_peak_memory=result.peak_memory_bytes or result.overall_memory_bytes or 0,
            first_load_time=init, warm_load_time=init, all_inference_times=[],
            first_inference_time=result.first_inference_us, inference_stats=latency, iterations=stats.count,
            warmup_iterations=result.warmup.count if result.warmup else max(1, job_plan.options.warmup_iterations),
            threads=job_plan.threads, compute_unit=job_plan.compute_unit,
            delegate=None if delegated == 0 else job_plan.delegate,  # 0: the delegate took nothing
            delegated_ops=delegated, total_ops=total, cpu_fallback=fallback,
        )
        environment: dict[str, Any] = {
            "phone": {k: props.get(k, "") for k in ("ro.product.manufacturer", "ro.product.model",
                                                    "ro.board.platform", "ro.soc.model", "ro.build.version.release",
                                                    "ro.build.version.sdk", "ro.product.cpu.abi")},
            "benchmark_model": str(self.settings.benchmark_model.name),
            "benchmark_model_flags": job_plan.flags,
            "conditions_before": before, "conditions_after": after,
            "latency_statistics": ("benchmark_model's own count/min/max/avg/std over the timed runs; it prints no "
                                   "per-iteration times. median/p90/p99 are printed ones when the build has them, "
                                   "else median=avg and p90=p99=max (upper bounds)"),
            "load_time": "benchmark_model's Init (one load: first and warm load are the same measurement)",
            "memory": ("peak footprint via periodic monitoring" if result.peak_memory_bytes else
                       "memory footprint delta (overall) from benchmark_model"),
            "op_profiling": "enabled (--enable_op_profiling): per-op times are the profiler's",
        }
        return Profile(execution_summary=summary, execution_detail=_op_details(job_plan, result),
                       runtime=f"tflite benchmark_model ({self.settings.benchmark_model.name})", device=job.device,
                       warnings=warnings, environment=environment)


# -- inference: the model's tensors, the samples, the command, the outputs ----------------------------------


def _input_samples(job: Job, inputs: Sequence[TensorInfo]) -> tuple[list[Feeds], list[str]]:
    """One feed per sample, each array exactly of its tensor's dtype and shape, and the conversions made."""
    for info in inputs:
        # benchmark_model splits --input_layer at commas: such a name cannot be given to it.
        if not info.name or "," in info.name:
            raise JobFailure(f"the model's input {info.name!r} cannot be named to benchmark_model, whose "
                             "--input_layer is a comma-separated list of names; rename the input (or run inference "
                             "on a host device)")
    if job.inputs_path is None:
        samples = [random_feeds(inputs)]
        conversions = ["no input dataset: one sample of seeded random inputs (floats in [0, 1), 8/16-bit integers "
                       "over their range)"]
    else:
        samples, conversions = dataset_feeds(read_dataset(job.inputs_path), inputs, job.spec.compile_result)
    for i, feed in enumerate(samples):
        for info in inputs:
            _check_feed(info, feed[info.name], i)
    return samples, conversions


def _check_feed(info: TensorInfo, array: np.ndarray, sample: int) -> None:
    fits = array.ndim == len(info.shape) and all(d in (DYNAMIC, n) for d, n in zip(info.shape, array.shape))
    if array.dtype != np.dtype(info.dtype) or not fits:
        raise JobFailure(f"sample {sample + 1}: the model's input {info.name!r} takes {info.dtype} {info.shape}, "
                         f"but the data is {array.dtype} {list(array.shape)}. The dataset holds one array per input "
                         "with the samples on axis 0, each sample exactly as the input takes it (a compiled model's "
                         "dataset is in the source model's terms)")


def _batches(samples: Sequence[Feeds], output_bytes: int) -> Iterator[range]:
    """Consecutive samples, at most MAX_BATCH_SAMPLES and (beyond one sample) MAX_BATCH_BYTES of files each."""
    start, size = 0, 0
    for i, feed in enumerate(samples):
        sample_bytes = sum(array.nbytes for array in feed.values()) + output_bytes
        if i > start and (i - start >= MAX_BATCH_SAMPLES or size + sample_bytes > MAX_BATCH_BYTES):
            yield range(start, i)
            start, size = i, 0
        size += sample_bytes
    if start < len(samples):
        yield range(start, len(samples))


def _push_samples(session: AdbSession, inputs: Sequence[TensorInfo], samples: Sequence[Feeds], batch: range,
                  local: Path, remote: str) -> list[str]:
    """Each input of each sample as one raw file: its bytes in C order, as LoadInputTensorData reads them."""
    names = []
    for i in batch:
        for j, info in enumerate(inputs):
            name = _input_file(i, j)
            (local / name).write_bytes(np.ascontiguousarray(samples[i][info.name]).tobytes())
            session.push(local / name, f"{remote}/{name}", executable=False)
            names.append(name)
    return names


def _samples_command(job_plan: AndroidPlan, model: TfliteIO, samples: Sequence[Feeds], batch: range,
                     remote: str) -> str:
    """`cd DIR && echo MARKER && benchmark_model … && echo MARKER && …`: the first failure stops the chain, and
    the exit status read back is that sample's."""
    steps = [f"cd {shlex.quote(remote)}"]
    for i in batch:
        argv = [f"--graph={remote}/model.tflite", *job_plan.flags, *_input_flags(model.inputs, samples[i], i),
                f"--output_filepath={_output_file(i)}"]
        if model.signature:
            argv.append(f"--signature_to_run_for={model.signature}")
        steps.append(f"echo {shlex.quote(f'{SAMPLE_MARKER}{i + 1} of {len(samples)}')}")
        steps.append(f"{_launcher(remote)} {' '.join(shlex.quote(a) for a in argv)} 2>&1")
    return " && ".join(steps)


def _input_flags(inputs: Sequence[TensorInfo], feed: Feeds, sample: int) -> list[str]:
    if not inputs:
        return []
    shapes = [",".join(str(n) for n in feed[info.name].shape) for info in inputs]
    # benchmark_model matches these to the subgraph's inputs by position; a ':' in a name or path is written
    # '::' in --input_layer_value_files (SplitInputLayerNameAndValueFile), the only flag that splits at ':'
    # inside an item.
    files = [f"{_escape_colons(info.name)}:{_escape_colons(_input_file(sample, j))}" for j, info in enumerate(inputs)]
    return [f"--input_layer={','.join(info.name for info in inputs)}", f"--input_layer_shape={':'.join(shapes)}",
            f"--input_layer_value_files={','.join(files)}"]


def _split_outputs(data: bytes, outputs: Sequence[TensorInfo], sizes: Sequence[int]) -> Feeds:
    """OutputSaver's file: every output tensor's raw bytes, concatenated in the subgraph's output order."""
    feeds: Feeds = {}
    offset = 0
    for info, size in zip(outputs, sizes):
        array = np.frombuffer(data, dtype=info.dtype, count=size // np.dtype(info.dtype).itemsize, offset=offset)
        feeds[info.name] = array.reshape(_static_shape(info)).copy()
        offset += size
    return feeds


def _static_shape(info: TensorInfo) -> list[int]:
    """A DYNAMIC dimension is 1 here, as the flatbuffer's own `shape` records it and benchmark_model runs it."""
    return [1 if d == DYNAMIC else int(d) for d in info.shape]


def _nbytes(info: TensorInfo) -> int:
    return int(np.prod(_static_shape(info), dtype=np.int64)) * np.dtype(info.dtype).itemsize


def _input_file(sample: int, index: int) -> str:
    return f"s{sample}_in{index}.bin"


def _output_file(sample: int) -> str:
    return f"s{sample}_out.bin"


def _escape_colons(text: str) -> str:
    return text.replace(":", "::")


def _launcher(remote: str) -> str:
    """./benchmark_model with the job directory on the library paths: delegates load their companions (QNN's
    libQnnHtp*.so, the Hexagon skel) from there."""
    return (f"LD_LIBRARY_PATH={shlex.quote(remote)}:$LD_LIBRARY_PATH "
            f"ADSP_LIBRARY_PATH={shlex.quote(remote + ';/vendor/lib/rfsa/adsp;/vendor/dsp/cdsp;/vendor/dsp')} "
            f"./{BINARY}")


def _progress_lines(progress: ProgressCallback) -> Callable[[str], None]:
    """benchmark_model's milestones, and which sample the inference chain is on, as the job's progress."""

    def on_line(line: str) -> None:
        if line.startswith(("Running benchmark", "Initialized session", "Loaded model")):
            progress(f"benchmark_model: {line.strip()}")
        elif line.startswith(SAMPLE_MARKER):
            progress(f"running benchmark_model on sample {line.removeprefix(SAMPLE_MARKER).strip()}")

    return on_line


def _exit_text(status: int) -> str:
    return f"was killed by signal {status - 128}" if status > 128 else f"exited with status {status}"


# -- profile: flags and reading benchmark_model's report ------------------------------------------------------


def _run_flags(options: RuntimeOptions) -> list[str]:
    if isinstance(options, ProfileOptions):
        return [f"--warmup_runs={max(1, options.warmup_iterations)}", "--warmup_min_secs=0",
                f"--num_runs={options.max_profiler_iterations}", "--min_secs=0",
                f"--max_secs={options.max_profiler_time:g}", "--enable_op_profiling=true",
                "--report_peak_memory_footprint=true"]
    # Inference: exactly one invocation. benchmark_model runs warm-ups while `run < warmup_runs` OR until
    # warmup_min_secs have passed, then timed runs the same way (BenchmarkModel::Run), so both counts and both
    # minimum durations must be zeroed; OutputSaver writes the outputs of that single run at the end.
    return ["--num_runs=1", "--warmup_runs=0", "--min_secs=0", "--warmup_min_secs=0"]


def _delegation(job_plan: AndroidPlan, result: BenchmarkOutput) -> tuple[int | None, int | None, bool, list[str]]:
    """(delegated ops, total ops, cpu_fallback, warnings) from the `Replacing N out of M` lines."""
    xnnpack = [d for d in result.delegations if d.delegate in XNNPACK_NAMES]
    others = [d for d in result.delegations if d.delegate not in XNNPACK_NAMES]
    if job_plan.unit == "cpu":
        return (xnnpack[0].replaced, xnnpack[0].total, False, []) if xnnpack else (None, None, False, [])
    # The line of the delegate asked for, not XNNPACK's (which benchmark_model reports as well).
    explicit = result.explicit_delegation.get({"GPU": "GPU", "NNAPI": "NNAPI"}.get(job_plan.delegate, "EXTERNAL"))
    delegation = others[0] if others else None
    label = job_plan.delegate
    if delegation is not None:
        delegated, total = delegation.replaced, delegation.total
        if delegated < total:
            return delegated, total, True, [
                f"the {label} delegate took {delegated} of {total} ops ({delegation.partitions} partition(s)); "
                f"the other {total - delegated} ran on the CPU"]
        return delegated, total, False, []
    if explicit == "complete":
        return None, None, False, []
    if explicit == "partial":
        return None, None, True, [f"the {label} delegate took part of the model; the rest ran on the CPU "
                                  "(benchmark_model did not say how many ops)"]
    return 0, None, True, [f"--compute_unit {job_plan.compute_unit} asked for the {label} delegate, but it took "
                           "no ops: the whole model ran on the CPU"]


def _op_details(job_plan: AndroidPlan, result: BenchmarkOutput) -> list[OpDetail]:
    details = []
    for op in result.ops:
        is_delegate = "delegate" in op.node_type.lower() or op.node_type == "DELEGATE"
        on_unit = is_delegate and "xnnpack" not in op.node_type.lower() and job_plan.unit != "cpu"
        details.append(OpDetail(
            name=op.name, type=op.node_type, compute_unit=job_plan.unit.upper() if on_unit else "CPU",
            delegate=job_plan.delegate if on_unit else ("XNNPACK" if is_delegate else None),
            execution_time=op.avg_us))
    return details


def _option_text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _settings(device: DeviceConfig) -> AndroidSettings:
    settings = device.backend
    assert isinstance(settings, AndroidSettings), settings
    return settings
