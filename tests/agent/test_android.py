"""The Android backend end to end over a FAKE ADB (tests/agent/fake_adb.py): only adb-shell's TCP transport is
replaced; the real AdbDeviceTcp, the ADB protocol (CNXN/AUTH/OPEN/WRTE/OKAY/CLSE), FileSync push and everything
in the backend run as in production. benchmark_model "runs" by printing recorded outputs from
tests/agent/data/benchmark_model/."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from adb_shell.auth.keygen import keygen
from edgefarm.wire import JobType
from edgefarm_agent.backends import Job, JobCancelled, JobFailure, JobSpec, build_backend
from edgefarm_agent.backends.android import AndroidBackend, describe_phone, parse_dumpsys_battery
from edgefarm_agent.backends.benchmark_output import MIB
from edgefarm_agent.config import ConfigError, DeviceConfig, parse_config

from tests.agent.fake_adb import DUMPSYS_BATTERY, PIXEL_PROPS, FakeAdbTransport, FakePhone

DATA = Path(__file__).parent / "data" / "benchmark_model"
REMOTE = "/data/local/tmp/edgefarm"


@pytest.fixture(scope="session")
def adb_key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("adb") / "adbkey"
    keygen(str(path))
    return path


@pytest.fixture
def phone(adb_key, monkeypatch) -> FakePhone:
    phone = FakePhone(authorised_keys=[str(adb_key)], benchmark_output=(DATA / "android_gpu_full.txt").read_text())
    # The lowest level: where AdbDeviceTcp would open a socket, it gets the scripted transport.
    monkeypatch.setattr("adb_shell.adb_device.TcpTransport", lambda host, port: FakeAdbTransport(phone))
    return phone


@pytest.fixture
def tools(tmp_path) -> Path:
    d = tmp_path / "tools"
    d.mkdir()
    (d / "benchmark_model").write_bytes(b"\x7fELF fake aarch64 benchmark_model")
    (d / "libQnnTFLiteDelegate.so").write_bytes(b"\x7fELF fake QNN delegate")
    (d / "libQnnHtp.so").write_bytes(b"\x7fELF fake QNN HTP backend")
    return d


def android_device(tools: Path, key: Path, *, extra: str = "", attributes: str = "[]") -> DeviceConfig:
    return parse_config(f"""
[agent]
work_dir = "{tools.parent / 'agent-work'}"
[[devices]]
name = "Pixel 8"
serial = "pixel8-a"
attributes = {attributes}
[devices.backend]
type = "android"
address = "192.168.1.20:5555"
adb_key = "{key}"
benchmark_model = "{tools / 'benchmark_model'}"
{extra}
""").devices[0]


def profile(tmp_path: Path, device: DeviceConfig, options: str = "", *, job_type: JobType = JobType.PROFILE):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3 a model")
    backend = build_backend(device)
    spec = JobSpec(job_type, "tflite", options)
    backend.check(spec)
    job = Job(spec=spec, device=device.spec(), model_path=model, inputs_path=None, work_dir=tmp_path)
    messages: list[str] = []
    outcome = backend.run(job, cancelled=threading.Event(), progress=messages.append)
    return outcome


def job_dirs(phone: FakePhone) -> set[str]:
    return {p.rsplit("/", 1)[0] for p in phone.files if p.startswith(REMOTE)}


def test_connect_identifies_the_phone_and_the_spec_carries_it(phone, tools, adb_key):
    device = android_device(tools, adb_key, attributes='["accelerator:npu", "chipset:gs301"]')
    backend = build_backend(device)
    assert isinstance(backend, AndroidBackend) and phone.connected
    spec = device.spec()
    assert spec.os == "Android 14"
    assert {"os:android", "abi:arm64-v8a", "platform:zuma", "manufacturer:google", "model:pixel-8", "android:14",
            "accelerator:npu", "framework:tflite"} <= set(spec.attributes)
    assert "chipset:gs301" in spec.attributes and "chipset:tensor-g3" not in spec.attributes  # the operator's wins


def test_profile_on_the_gpu_pushes_runs_parses_and_cleans_up(phone, tools, adb_key, tmp_path):
    device = android_device(tools, adb_key)
    outcome = profile(tmp_path, device, "--compute_unit gpu --max_profiler_iterations 50 --warmup_iterations 1 "
                                        "--tflite_options number_of_threads=4")
    p = outcome.profile
    s = p.execution_summary
    # the recorded real output (tensorflow/tensorflow#43541): count=50 … avg=119375 std=1948
    assert s.estimated_inference_time == 119375 and s.iterations == 50 and s.warmup_iterations == 4
    assert (s.inference_stats.min, s.inference_stats.p99, s.inference_stats.std) == (113737, 124776, 1948)
    assert s.first_load_time == 870557 and s.first_inference_time == 130565 and s.threads == 4
    assert s.delegate == "GPU" and s.compute_unit == "gpu" and not s.cpu_fallback
    assert p.device.serial == "pixel8-a" and "chipset:tensor-g3" in p.device.attributes
    argv = phone.benchmark_argv
    assert {"--use_gpu=true", "--num_runs=50", "--warmup_runs=1", "--num_threads=4", "--enable_op_profiling=true",
            "--report_peak_memory_footprint=true"} <= set(argv)
    graph = next(a for a in argv if a.startswith("--graph="))
    job_dir = graph.removeprefix("--graph=").rsplit("/", 1)[0]
    assert job_dir.startswith(REMOTE + "/job-")
    assert any(c.startswith(f"mkdir -p {job_dir}") for c in phone.commands)
    assert any(c.startswith(f"chmod 755 {job_dir}/benchmark_model") for c in phone.commands)
    assert phone.commands[-1] == f"rm -rf {job_dir}" and job_dirs(phone) == set()  # pushed files are gone
    before, after = p.environment["conditions_before"], p.environment["conditions_after"]
    assert before["battery"] == {"level_percent": 87, "temperature_c": 31.2, "charging_from": ["USB"]}
    assert before["thermal_status"] == 1 and before["temperatures_c"] == {"BIG": 41.25, "battery": 31.2}
    assert after["cpu_freq_khz"] == {"cpu0": 1704000, "cpu7": 2910000}
    assert p.environment["phone"]["ro.soc.model"] == "Tensor G3"
    assert "Explicitly applied GPU delegate" in outcome.log
    # benchmark_model may print nothing for minutes: its reads wait for the whole job budget, not 10 s
    assert max(t for t in phone.read_timeouts if t) >= 600


def test_pushed_files_arrive_intact_through_filesync(phone, tools, adb_key, tmp_path):
    seen: dict[str, bytes] = {}
    original = phone._benchmark

    def snapshot(directory, argv):
        seen.update({p.rsplit("/", 1)[1]: c for p, c in phone.files.items() if p.startswith(directory)})
        return original(directory, argv)

    phone._benchmark = snapshot
    device = android_device(tools, adb_key, extra=f'libraries = ["{tools / "libQnnHtp.so"}"]')
    profile(tmp_path, device, "--compute_unit gpu")
    assert seen["benchmark_model"] == (tools / "benchmark_model").read_bytes()
    assert seen["libQnnHtp.so"] == (tools / "libQnnHtp.so").read_bytes()
    assert seen["model.tflite"].startswith(b"\x1c\x00\x00\x00TFL3")


def test_npu_external_delegate_that_takes_part_of_the_model_is_a_visible_fallback(phone, tools, adb_key, tmp_path):
    phone.benchmark_output = (DATA / "synthetic_qnn_partial.txt").read_text()
    library = tools / "libQnnTFLiteDelegate.so"
    device = android_device(tools, adb_key, extra=f'[devices.backend.npu]\nlibrary = "{library}"\n'
                                                  'options = { backend_type = "htp", htp_use_conv_hmx = true }')
    p = profile(tmp_path, device, "--compute_unit npu").profile
    assert "--external_delegate_path=libQnnTFLiteDelegate.so" in phone.benchmark_argv
    assert "--external_delegate_options=backend_type:htp;htp_use_conv_hmx:true" in phone.benchmark_argv
    s = p.execution_summary
    assert (s.delegate, s.delegated_ops, s.total_ops, s.cpu_fallback) == ("libQnnTFLiteDelegate.so", 58, 64, True)
    assert "took 58 of 64 ops" in p.warnings[0]
    assert s.estimated_inference_time == 2001  # the printed median
    assert s.estimated_inference_peak_memory == round(31.5 * MIB)
    assert [(op.type, op.compute_unit, op.delegate) for op in p.execution_detail] == [
        ("QnnDelegate", "NPU", "libQnnTFLiteDelegate.so"), ("Convolution (NHWC, F32)", "CPU", None)]


def test_nnapi_that_takes_nothing_reports_cpu_fallback(phone, tools, adb_key, tmp_path):
    phone.benchmark_output = ("INFO: Though NNAPI delegate is explicitly applied, the model graph will not be "
                              "executed by the delegate.\n" + (DATA / "kws_newer_format.txt").read_text())
    p = profile(tmp_path, android_device(tools, adb_key), "--compute_unit npu").profile
    assert "--use_nnapi=true" in phone.benchmark_argv
    s = p.execution_summary
    assert s.cpu_fallback and s.delegated_ops == 0 and s.delegate is None
    assert "took no ops" in p.warnings[0] and s.estimated_inference_time == 1039.66


def test_cpu_default_is_xnnpack_and_none_turns_it_off(phone, tools, adb_key, tmp_path):
    phone.benchmark_output = (DATA / "rpi_xnnpack_int8.txt").read_text()
    p = profile(tmp_path, android_device(tools, adb_key), "--compute_unit cpu").profile
    assert "--use_xnnpack=true" in phone.benchmark_argv and p.execution_summary.delegate == "XNNPACK"
    assert p.execution_summary.estimated_inference_peak_memory == round(18.7227 * MIB)  # the overall delta
    p = profile(tmp_path, android_device(tools, adb_key), "--tflite_delegates none").profile
    assert "--use_xnnpack=false" in phone.benchmark_argv and p.execution_summary.delegate is None


def test_a_key_the_phone_has_not_authorised_is_a_clear_failure(phone, tools, adb_key, tmp_path, caplog):
    phone.authorised_keys = []  # a new phone: nobody has tapped "Allow" for this key
    device = android_device(tools, adb_key)
    with caplog.at_level(logging.WARNING):
        backend = build_backend(device)  # registering does not fail: the phone is identified later
    assert "not identified yet" in caplog.text and "tap 'Allow'" in caplog.text
    with pytest.raises(JobFailure) as failure:
        backend.run(Job(JobSpec(JobType.PROFILE, "tflite"), device.spec(), tmp_path, None, tmp_path),
                    cancelled=threading.Event(), progress=lambda m: None)
    assert "did not authorise this agent's ADB key" in failure.value.reason
    assert f"{adb_key}.pub" in failure.value.reason and "Allow USB debugging" in failure.value.reason


def test_the_first_run_generates_a_key_and_says_the_phone_will_ask(phone, tools, adb_key, tmp_path, caplog):
    phone.authorised_keys, phone.accept_new_keys = [], True  # the person at the phone taps Allow
    device = parse_config(f"""
[agent]
work_dir = "{tmp_path / 'work'}"
[[devices]]
name = "Pixel 8"
serial = "pixel8-a"
[devices.backend]
type = "android"
address = "10.0.0.7:5555"
benchmark_model = "{tools / 'benchmark_model'}"
""").devices[0]
    with caplog.at_level(logging.WARNING):
        build_backend(device)
    key = tmp_path / "work" / "adbkey"
    assert key.exists() and Path(f"{key}.pub").exists()  # under the agent's work dir by default
    assert "generated this agent's ADB key" in caplog.text and "Allow USB debugging?" in caplog.text
    assert phone.connected and "chipset:tensor-g3" in device.spec().attributes


def test_the_phone_going_away_mid_run_fails_the_job_and_still_cleans_up(phone, tools, adb_key, tmp_path):
    phone.disconnect_during_benchmark = True
    with pytest.raises(JobFailure) as failure:
        profile(tmp_path, android_device(tools, adb_key), "--compute_unit gpu")
    assert "lost the connection" in failure.value.reason and "Pixel 8" in failure.value.reason
    assert phone.commands[-1].startswith(f"rm -rf {REMOTE}/job-") and job_dirs(phone) == set()


def test_non_zero_exit_is_a_failure_with_the_tools_output(phone, tools, adb_key, tmp_path):
    phone.benchmark_output = ("INFO: Created TensorFlow Lite delegate for GPU.\n"
                              "ERROR: Failed to apply GPU delegate.\nBenchmarking failed.\n")
    phone.benchmark_exit = 1
    with pytest.raises(JobFailure) as failure:
        profile(tmp_path, android_device(tools, adb_key), "--compute_unit gpu")
    assert "exited with status 1" in failure.value.reason
    assert "Failed to apply GPU delegate" in failure.value.reason  # the delegate refused: never a silent CPU run
    assert "Benchmarking failed." in failure.value.log and job_dirs(phone) == set()


def test_a_crash_names_the_signal(phone, tools, adb_key, tmp_path):
    phone.benchmark_output, phone.benchmark_exit = "INFO: Loaded model x\nSegmentation fault\n", 139
    with pytest.raises(JobFailure, match="killed by signal 11.*Segmentation fault"):
        profile(tmp_path, android_device(tools, adb_key), "--compute_unit gpu")


def test_an_unreachable_phone_says_how_to_reach_it(adb_key, tools, monkeypatch, tmp_path):
    monkeypatch.setattr("adb_shell.adb_device.TcpTransport",
                        lambda host, port: FakeAdbTransport(FakePhone(), refuse_connection=True))
    device = android_device(tools, adb_key)
    backend = AndroidBackend(device, identify=False)
    with pytest.raises(JobFailure, match=r"cannot connect to phone 'Pixel 8' \(192.168.1.20:5555\).*adb tcpip 5555"):
        backend.run(Job(JobSpec(JobType.PROFILE, "tflite"), device.spec(), tmp_path, None, tmp_path),
                    cancelled=threading.Event(), progress=lambda m: None)


def test_jobs_the_phone_cannot_run_are_refused_before_download(phone, tools, adb_key):
    backend = build_backend(android_device(tools, adb_key))
    with pytest.raises(JobFailure, match="inference on Android is not done yet"):
        backend.check(JobSpec(JobType.INFERENCE, "tflite"))
    with pytest.raises(JobFailure, match="runs .tflite models with benchmark_model, not onnx"):
        backend.check(JobSpec(JobType.PROFILE, "onnx"))
    with pytest.raises(JobFailure, match="no external delegate configured"):
        backend.check(JobSpec(JobType.PROFILE, "tflite", "--tflite_delegates external"))


def test_a_missing_benchmark_model_names_the_path(phone, tools, adb_key, tmp_path):
    (tools / "benchmark_model").unlink()
    with pytest.raises(JobFailure, match=f"{tools / 'benchmark_model'} does not exist on the agent's machine"):
        profile(tmp_path, android_device(tools, adb_key))


def test_config_needs_exactly_one_way_to_reach_the_phone(tools):
    base = f'[[devices]]\nname = "P"\nserial = "p"\n[devices.backend]\ntype = "android"\n' \
           f'benchmark_model = "{tools}/benchmark_model"\n'
    with pytest.raises(ConfigError, match=r"devices\[0\] \('P'\)\.backend: .*either address"):
        parse_config(base)
    with pytest.raises(ConfigError, match="either address"):
        parse_config(base + 'address = "h:5555"\nusb = true\n')
    assert parse_config(base + "usb = true\n").devices[0].backend.usb


def test_parsers_of_the_phones_answers():
    assert parse_dumpsys_battery(DUMPSYS_BATTERY)["level_percent"] == 87
    os_text, attributes = describe_phone({**PIXEL_PROPS, "ro.soc.model": ""})
    assert os_text == "Android 14" and "chipset:zuma" in attributes  # no ro.soc.model: the board platform


def test_a_cancelled_job_stops_and_cleans_up(phone, tools, adb_key, tmp_path):
    device = android_device(tools, adb_key)
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    cancelled = threading.Event()

    def progress(message: str) -> None:
        if message.startswith("pushing"):
            cancelled.set()  # the lease is lost while the files go to the phone

    job = Job(JobSpec(JobType.PROFILE, "tflite"), device.spec(), tmp_path / "model.tflite", None, tmp_path)
    with pytest.raises(JobCancelled):
        build_backend(device).run(job, cancelled=cancelled, progress=progress)
    assert phone.benchmark_argv == [] and phone.commands[-1].startswith(f"rm -rf {REMOTE}/job-")
    assert job_dirs(phone) == set()


def test_the_agent_registers_the_identified_phone(phone, tools, adb_key):
    from edgefarm_agent.loop import Agent

    class RecordingClient:
        def register(self, body):
            self.body = body
            raise RuntimeError("recorded")

    client = RecordingClient()
    config = parse_config(f"""
[[devices]]
name = "Pixel 8"
serial = "pixel8-a"
[devices.backend]
type = "android"
address = "192.168.1.20:5555"
adb_key = "{adb_key}"
benchmark_model = "{tools / 'benchmark_model'}"
""")
    with pytest.raises(RuntimeError, match="recorded"):
        Agent(config, client).register()
    (spec,) = client.body.devices
    assert spec.os == "Android 14"
    assert {"chipset:tensor-g3", "abi:arm64-v8a", "framework:tflite"} <= set(spec.attributes)
