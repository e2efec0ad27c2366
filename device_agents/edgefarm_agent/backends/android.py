"""The Android backend: TFLite's `benchmark_model` on a phone over ADB (adb-shell: no adb server, no adb binary).

A profile job, in order: connect (the agent's RSA key; the phone asks once to allow it), read the conditions
(battery, thermal status and zones, CPU frequencies), make a per-job directory under `remote_dir`, push the
model, `benchmark_model` and any delegate libraries, chmod, run `benchmark_model` with flags from the job's
options, read the conditions again, and remove the job directory whatever happened.

adb-shell returns one stream with stdout and stderr mixed and no exit status, so each command that matters
ends with `; echo __EXIT__$?` and the status is read back from the output; a missing marker means the process
(or the connection) died. The numbers come from benchmark_model's own output (benchmark_output.py): it
prints aggregate statistics, not each iteration, so `all_inference_times` stays empty and `environment`
says how median/p90/p99 were obtained. Inference jobs are refused (not done on Android yet).
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adb_shell import exceptions as adb_errors
from adb_shell.adb_device import AdbDevice, AdbDeviceTcp, AdbDeviceUsb
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_cryptography import CryptographySigner
from edgefarm.options import OptionsError, ProfileOptions
from edgefarm.wire import ExecutionSummary, JobType, LatencyStats, OpDetail, Profile

from edgefarm_agent.backends import (
    Job,
    JobCancelled,
    JobFailure,
    JobSpec,
    Outcome,
    ProfileOutcome,
    ProgressCallback,
)
from edgefarm_agent.backends.benchmark_output import BenchmarkOutput, parse_benchmark_output
from edgefarm_agent.config import AndroidBackend as AndroidSettings
from edgefarm_agent.config import DeviceConfig

logger = logging.getLogger(__name__)

EXIT_MARKER = "__EXIT__"
BINARY = "benchmark_model"
# What adb-shell and the socket under it raise when the link to the phone breaks.
LINK_ERRORS = (adb_errors.AdbConnectionError, adb_errors.AdbTimeoutError, adb_errors.TcpTimeoutException,
               adb_errors.InvalidResponseError, adb_errors.InvalidCommandError, adb_errors.InvalidChecksumError,
               adb_errors.UsbReadFailedError, adb_errors.UsbWriteFailedError, OSError)
XNNPACK_NAMES = ("TfLiteXNNPackDelegate", "XNNPACK")


@dataclass
class AndroidPlan:
    """How benchmark_model runs the job: the unit, the delegate label, the flags, the libraries to push."""

    compute_unit: str  # as asked
    unit: str  # cpu | gpu | npu
    delegate: str | None  # XNNPACK, GPU, NNAPI or the external delegate's file name; None: plain CPU kernels
    flags: list[str] = field(default_factory=list)  # without --graph (the job directory is known later)
    threads: int | None = None
    external: Path | None = None  # the external delegate library on this machine
    options: ProfileOptions = field(default_factory=ProfileOptions)


def plan(device: DeviceConfig, spec: JobSpec) -> AndroidPlan:
    settings = _settings(device)
    where = f"device {device.name!r} (serial {device.serial})"
    if spec.job_type != JobType.PROFILE:
        raise JobFailure(f"{where} is an Android phone: it runs profile jobs only; inference on Android is not "
                         "done yet. Run inference on a host or board device")
    if spec.model_format != "tflite":
        raise JobFailure(f"{where} runs .tflite models with benchmark_model, not {spec.model_format}; compile the "
                         "model first (submit_compile_job with --target_runtime tflite)")
    try:
        options = ProfileOptions.parse(spec.options)
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
    flags = [f"--warmup_runs={max(1, options.warmup_iterations)}", "--warmup_min_secs=0",
             f"--num_runs={options.max_profiler_iterations}", "--min_secs=0",
             f"--max_secs={options.max_profiler_time:g}", "--enable_op_profiling=true",
             "--report_peak_memory_footprint=true", f"--use_xnnpack={'true' if xnnpack else 'false'}"]
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
        progress("connecting to the phone")
        with self.session() as session:
            props = session.identify()
            remote = f"{self.settings.remote_dir}/job-{uuid.uuid4().hex[:12]}"
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

    def _benchmark(self, session: AdbSession, job: Job, job_plan: AndroidPlan, remote: str,
                   cancelled: threading.Event, progress: ProgressCallback) -> tuple[str, int]:
        session.run_checked(f"mkdir -p {shlex.quote(remote)}", "make the job directory")
        progress("pushing the model and benchmark_model to the phone")
        pushes = [(job.model_path, "model.tflite"), (self.settings.benchmark_model, BINARY)]
        pushes += [(library, library.name) for library in self.settings.libraries]
        if job_plan.external is not None:
            pushes.append((job_plan.external, job_plan.external.name))
        for local, name in pushes:
            session.push(local, f"{remote}/{name}")
        session.run_checked(f"chmod 755 {shlex.quote(remote + '/' + BINARY)}", "make benchmark_model executable")
        if cancelled.is_set():
            raise JobCancelled()
        argv = [f"--graph={remote}/model.tflite", *job_plan.flags]
        # Delegates load their companions (QNN's libQnnHtp*.so, the Hexagon skel) from the job directory.
        command = (f"cd {shlex.quote(remote)} && LD_LIBRARY_PATH={shlex.quote(remote)}:$LD_LIBRARY_PATH "
                   f"ADSP_LIBRARY_PATH={shlex.quote(remote + ';/vendor/lib/rfsa/adsp;/vendor/dsp/cdsp;/vendor/dsp')} "
                   f"./{BINARY} {' '.join(shlex.quote(a) for a in argv)} 2>&1")
        progress("running benchmark_model on the phone")
        timeout = job_plan.options.max_profiler_time + 600  # plus model load, delegate compilation, warm-up
        return session.run_streaming(command, timeout=timeout, cancelled=cancelled, progress=progress)

    def _profile(self, job: Job, job_plan: AndroidPlan, output: str, status: int, props: dict[str, str],
                 before: dict[str, Any], after: dict[str, Any]) -> Profile:
        name = self.device.name
        result = parse_benchmark_output(output)
        if status != 0:
            what = f"was killed by signal {status - 128}" if status > 128 else f"exited with status {status}"
            tail = result.errors[-3:] or output.strip().splitlines()[-3:] or ["no output"]
            raise JobFailure(f"benchmark_model on {name!r} {what}: {' | '.join(tail)}", output)
        stats = result.inference
        if stats is None or stats.avg is None:
            raise JobFailure(f"benchmark_model on {name!r} printed no timings (an unknown output format?)", output)
        delegated, total, fallback, warnings = _delegation(job_plan, result)
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


def _delegation(job_plan: AndroidPlan, result: BenchmarkOutput) -> tuple[int | None, int | None, bool, list[str]]:
    """(delegated ops, total ops, cpu_fallback, warnings) from the `Replacing N out of M` lines."""
    xnnpack = [d for d in result.delegations if d.delegate in XNNPACK_NAMES]
    others = [d for d in result.delegations if d.delegate not in XNNPACK_NAMES]
    if job_plan.unit == "cpu":
        return (xnnpack[0].replaced, xnnpack[0].total, False, []) if xnnpack else (None, None, False, [])
    explicit = next(iter(result.explicit_delegation.values()), None)
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


class AdbSession:
    """One ADB connection to the phone: shell commands with exit status, pushes, conditions, identity."""

    def __init__(self, device: DeviceConfig, settings: AndroidSettings, key_path: Path) -> None:
        self.device = device
        self.settings = settings
        self.key_path = key_path
        self.where = f"phone {device.name!r} ({settings.address or 'USB ' + (settings.usb_serial or '')})"
        self._adb: AdbDevice | None = None

    def connect(self) -> None:
        signer = CryptographySigner(str(_ensure_key(self.key_path)))
        prompted = threading.Event()

        def on_prompt(_device: AdbDevice) -> None:
            prompted.set()
            logger.warning("%s asks to allow this agent's ADB key (%s.pub): unlock it and tap 'Allow' "
                           "(tick 'Always allow from this computer')", self.where, self.key_path)

        timeout = self.settings.connect_timeout_seconds
        try:
            self._adb = self._open_device()
            self._adb.connect(rsa_keys=[signer], transport_timeout_s=timeout, read_timeout_s=timeout,
                              auth_timeout_s=self.settings.auth_timeout_seconds, auth_callback=on_prompt)
        except adb_errors.DeviceAuthError as exc:
            raise JobFailure(self._auth_text(f"the phone refused the key: {exc}")) from exc
        except LINK_ERRORS as exc:
            if prompted.is_set():
                raise JobFailure(self._auth_text(f"no answer within {self.settings.auth_timeout_seconds:g} s")) \
                    from exc
            hint = ("is it on, reachable, with ADB over TCP enabled (`adb tcpip 5555` once over USB, or wireless "
                    "debugging)?" if self.settings.address else
                    "is it plugged in with USB debugging on, and no adb server holding it (`adb kill-server`)?")
            raise JobFailure(f"cannot connect to {self.where}: {exc or type(exc).__name__}; {hint}") from exc

    def _open_device(self) -> AdbDevice:
        timeout = self.settings.connect_timeout_seconds
        if self.settings.address:
            host, _, port = self.settings.address.rpartition(":")
            return AdbDeviceTcp(host, int(port), default_transport_timeout_s=timeout)
        try:
            return AdbDeviceUsb(serial=self.settings.usb_serial, default_transport_timeout_s=timeout)
        except adb_errors.InvalidTransportError as exc:
            raise JobFailure(f"{self.where}: USB needs libusb1 on the agent's machine: pip install 'adb-shell[usb]' "
                             "(or use ADB over TCP: address = \"host:5555\")") from exc
        except adb_errors.UsbDeviceNotFoundError as exc:
            raise JobFailure(f"{self.where}: no phone with USB debugging found on USB: {exc}") from exc

    def _auth_text(self, detail: str) -> str:
        return (f"{self.where} did not authorise this agent's ADB key ({detail}). Unlock the phone, accept the "
                f"'Allow USB debugging?' prompt for the key {self.key_path}.pub (tick 'Always allow'), and retry")

    def close(self) -> None:
        if self._adb is not None:
            try:
                self._adb.close()
            except LINK_ERRORS:
                pass
            self._adb = None

    @property
    def adb(self) -> AdbDevice:
        if self._adb is None:
            raise JobFailure(f"{self.where}: not connected")
        return self._adb

    def shell(self, command: str, *, timeout: float | None = None) -> str:
        try:
            return self.adb.shell(command, read_timeout_s=timeout or self.settings.connect_timeout_seconds * 3)
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} running `{command[:60]}`: "
                             f"{exc or type(exc).__name__}") from exc

    def run_checked(self, command: str, what: str) -> str:
        output, status = _split_status(self.shell(f"{command}; echo {EXIT_MARKER}$?"))
        if status != 0:
            raise JobFailure(f"{self.where}: cannot {what} (`{command}` exited with {status}): {output.strip()}",
                             output)
        return output

    def run_streaming(self, command: str, *, timeout: float, cancelled: threading.Event,
                      progress: ProgressCallback) -> tuple[str, int]:
        chunks: list[str] = []
        try:
            # adb-shell does not retry a transport read that times out: a silent stretch (a delegate compiling the
            # graph, the timed runs) must fit in one transport timeout, not only in read_timeout_s.
            for chunk in self.adb.streaming_shell(f"{command}; echo {EXIT_MARKER}$?", transport_timeout_s=timeout,
                                                  read_timeout_s=timeout):
                chunks.append(chunk)
                if cancelled.is_set():
                    self.close()  # closing the stream ends the shell on the phone
                    raise JobCancelled()
                for line in chunk.splitlines():
                    if line.startswith(("Running benchmark", "Initialized session", "Loaded model")):
                        progress(f"benchmark_model: {line.strip()}")
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} while benchmark_model ran: "
                             f"{exc or type(exc).__name__}. Is the phone still connected and awake?",
                             "".join(chunks)) from exc
        text = "".join(chunks)
        if EXIT_MARKER not in text:
            raise JobFailure(f"benchmark_model on {self.where} ended without an exit status (killed?)", text)
        return _split_status(text)

    def push(self, local: Path, remote: str) -> None:
        try:
            self.adb.push(str(local), remote, st_mode=0o100755 if local.name != "model.tflite" else 0o100644)
        except (adb_errors.PushFailedError, adb_errors.AdbCommandFailureException) as exc:
            raise JobFailure(f"cannot push {local} to {remote} on {self.where}: {exc}") from exc
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} pushing {local.name}: "
                             f"{exc or type(exc).__name__}") from exc

    def remove(self, remote: str) -> None:
        """rm -rf the job directory; after a dropped link (cancel, cable, Wi-Fi) on one fresh connection."""
        command = f"rm -rf {shlex.quote(remote)}"
        for attempt in range(2):
            try:
                if self._adb is None:
                    self.connect()
                self.adb.shell(command, read_timeout_s=self.settings.connect_timeout_seconds)
                return
            except (JobFailure, *LINK_ERRORS) as exc:
                self.close()
                if attempt:
                    logger.warning("cannot remove %s on %s: %s", remote, self.where, getattr(exc, "reason", exc))

    def identify(self) -> dict[str, str]:
        """Read getprop, fill the device's identified attributes (chipset:, abi:, os:…), return the props."""
        props = parse_getprop(self.shell("getprop"))
        os_text, attributes = describe_phone(props)
        self.device.identified(os=os_text, attributes=attributes)
        return props

    def conditions(self) -> dict[str, Any]:
        battery = parse_dumpsys_battery(self.shell("dumpsys battery"))
        thermal = re.search(r"Thermal Status:\s*(\d+)", self.shell("dumpsys thermalservice"))
        zones = _grep_values(self.shell("grep -H . /sys/class/thermal/thermal_zone*/type "
                                        "/sys/class/thermal/thermal_zone*/temp 2>/dev/null"))
        temperatures = {}
        for path, kind in zones.items():
            if path.endswith("/type") and (raw := zones.get(path[:-len("type")] + "temp")) is not None:
                try:
                    value = float(raw)
                except ValueError:
                    continue
                temperatures[kind] = value / 1000 if abs(value) > 1000 else value  # millidegrees on most kernels
        freqs = _grep_values(self.shell("grep -H . /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq "
                                        "2>/dev/null"))
        cpu_khz = {m.group(1): int(v) for p, v in freqs.items()
                   if (m := re.search(r"/(cpu\d+)/cpufreq", p)) and v.isdigit()}
        return {"battery": battery, "thermal_status": int(thermal.group(1)) if thermal else None,
                "temperatures_c": temperatures, "cpu_freq_khz": cpu_khz}


# -- parsing the phone's answers ----------------------------------------------------------------------------


def parse_getprop(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", text, flags=re.MULTILINE))


def describe_phone(props: dict[str, str]) -> tuple[str, list[str]]:
    def value(text: str) -> str:
        return re.sub(r"\s+", "-", text.strip().lower())

    attributes = ["os:android"]
    chipset = props.get("ro.soc.model") or props.get("ro.board.platform")
    if chipset:
        attributes.append(f"chipset:{value(chipset)}")
    for key, prop in (("platform", "ro.board.platform"), ("manufacturer", "ro.product.manufacturer"),
                      ("model", "ro.product.model"), ("abi", "ro.product.cpu.abi"),
                      ("android", "ro.build.version.release")):
        if props.get(prop):
            attributes.append(f"{key}:{value(props[prop])}")
    release = props.get("ro.build.version.release")
    return (f"Android {release}" if release else "Android"), attributes


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    fields = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(\S+)\s*$", text, flags=re.MULTILINE))
    battery: dict[str, Any] = {}
    if (level := fields.get("level", "")).isdigit():
        battery["level_percent"] = int(level)
    if re.fullmatch(r"-?\d+", temperature := fields.get("temperature", "")):
        battery["temperature_c"] = int(temperature) / 10  # tenths of a degree
    plugged = [k.split()[0] for k in ("AC powered", "USB powered", "Wireless powered") if fields.get(k) == "true"]
    battery["charging_from"] = plugged
    return battery


def _grep_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if sep and path.startswith("/"):
            values[path] = value.strip()
    return values


def _split_status(text: str) -> tuple[str, int]:
    body, _, status = text.rpartition(EXIT_MARKER)
    try:
        return body, int(status.strip().splitlines()[0])
    except (ValueError, IndexError):
        return body, 255


def _option_text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _ensure_key(path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(path))
        logger.warning("generated this agent's ADB key %s (public part %s.pub). The first time the agent "
                       "connects, each phone shows 'Allow USB debugging?' with this key's fingerprint: unlock it "
                       "and tap Allow (tick 'Always allow from this computer')", path, path)
    return path


def _settings(device: DeviceConfig) -> AndroidSettings:
    settings = device.backend
    assert isinstance(settings, AndroidSettings), settings
    return settings
