"""The Android backend end to end over a FAKE ADB (tests/agent/fake_adb.py): only adb-shell's TCP transport is
replaced; the real AdbDeviceTcp, the ADB protocol (CNXN/AUTH/OPEN/WRTE/OKAY/CLSE), FileSync push and pull and
everything in the backend run as in production. benchmark_model "runs" a profile by printing recorded outputs
from tests/agent/data/benchmark_model/, and an inference by a STAND-IN that runs the pushed model with LiteRT on
this machine from the pushed input files (see fake_adb.py)."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from adb_shell.auth.keygen import keygen
from ai_edge_litert import schema_py_generated as schema
from edgefarm.datasets import write_npz
from edgefarm.tensors import from_target, to_target
from edgefarm.wire import CompileResult, JobType
from edgefarm_agent.backends import InferenceOutcome, Job, JobCancelled, JobFailure, JobSpec, build_backend
from edgefarm_agent.backends.adb import describe_phone, parse_dumpsys_battery
from edgefarm_agent.backends.android import AndroidBackend
from edgefarm_agent.backends.tflite_io import read_tflite_io
from edgefarm_agent.backends.benchmark_output import MIB
from edgefarm_agent.config import ConfigError, DeviceConfig, parse_config

from tests.agent.conftest import Models, images
from tests.agent.fake_adb import DUMPSYS_BATTERY, PIXEL_PROPS, FakeAdbTransport, FakePhone, StandInBenchmark

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
    # benchmark_model applies delegates in flag order: the GPU must get first pick, XNNPACK only the leftovers
    assert argv.index("--use_gpu=true") < argv.index("--use_xnnpack=true")
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


def test_xnnpack_taking_the_whole_model_does_not_hide_that_nnapi_took_nothing(phone, tools, adb_key, tmp_path):
    """With XNNPACK on as well, benchmark_model reports both delegates; the verdict is the one asked for."""
    phone.benchmark_output = (
        "INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the "
        "delegate.\nINFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed by "
        "the delegate.\n" + (DATA / "kws_newer_format.txt").read_text())
    p = profile(tmp_path, android_device(tools, adb_key), "--compute_unit npu").profile
    argv = phone.benchmark_argv
    assert argv.index("--use_nnapi=true") < argv.index("--use_xnnpack=true")
    assert p.execution_summary.cpu_fallback and "took no ops" in p.warnings[0]


def test_an_older_build_that_prints_only_the_average_still_gives_a_profile(phone, tools, adb_key, tmp_path):
    phone.benchmark_output = (DATA / "deepspeech_older_format.txt").read_text()
    p = profile(tmp_path, android_device(tools, adb_key), "--max_profiler_iterations 30").profile
    s = p.execution_summary
    assert s.estimated_inference_time == s.inference_stats.p99 == 23313.5 and s.iterations == 30
    assert s.first_load_time == 21528106 and "printed only the average" in p.warnings[-1]
    assert [op.type for op in p.execution_detail] == ["DELEGATE", "SPLIT", "ADD"]


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
    assert phone.open_transports == 0  # the refused connection was closed, not left to the garbage collector


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
    backend.check(JobSpec(JobType.INFERENCE, "tflite", "--compute_unit gpu"))  # inference is welcome
    with pytest.raises(JobFailure, match="runs .tflite models with benchmark_model, not onnx"):
        backend.check(JobSpec(JobType.PROFILE, "onnx"))
    with pytest.raises(JobFailure, match="runs .tflite models with benchmark_model, not onnx"):
        backend.check(JobSpec(JobType.INFERENCE, "onnx"))
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


# -- inference ------------------------------------------------------------------------------------------------


def rewrite_tflite(data: bytes, edit: Callable[[schema.ModelT], None]) -> bytes:
    """A .tflite changed through the flatbuffer's object API (renamed tensors, added signatures)."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="session")
def two_inputs(tmp_path_factory) -> Path:
    """A float model uploaded as is (no compile record): doubled = scale * 2 + 1, tripled = count * 3, with the
    inputs named "scale:0" (float32 [1, 4]; a ':' benchmark_model must get escaped) and "count" (int32). The
    converter puts the int32 output first."""
    import tensorflow as tf

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32), tf.TensorSpec([1, 3], tf.int32)])
        def __call__(self, scale, count):
            return scale * 2.0 + 1.0, count * 3

    net = Net()
    data = tf.lite.TFLiteConverter.from_concrete_functions([net.__call__.get_concrete_function()], net).convert()

    def rename(model: schema.ModelT) -> None:
        subgraph = model.subgraphs[0]
        for index, name in zip(subgraph.inputs, ("scale:0", "count")):
            subgraph.tensors[index].name = name
        for index in subgraph.outputs:
            tensor = subgraph.tensors[index]
            tensor.name = "tripled" if tensor.type == schema.TensorType.INT32 else "doubled"

    path = tmp_path_factory.mktemp("two-inputs") / "two_inputs.tflite"
    path.write_bytes(rewrite_tflite(data, rename))
    return path


def infer(tmp_path: Path, device: DeviceConfig, model: Path, inputs: dict[str, np.ndarray] | None = None, *,
          compile_result: CompileResult | None = None, options: str = "", cancelled: threading.Event | None = None,
          progress: Callable[[str], None] | None = None) -> InferenceOutcome:
    """What the agent does with a leased inference job once its files are here."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    inputs_path = None
    if inputs is not None:
        inputs_path = work / "inputs.npz"
        with inputs_path.open("wb") as file:
            write_npz(inputs, file)
    backend = build_backend(device)
    spec = JobSpec(JobType.INFERENCE, "tflite", options, compile_result)
    backend.check(spec)
    job = Job(spec=spec, device=device.spec(), model_path=model, inputs_path=inputs_path, work_dir=work)
    outcome = backend.run(job, cancelled=cancelled or threading.Event(), progress=progress or (lambda m: None))
    assert isinstance(outcome, InferenceOutcome)
    return outcome


def interpreter_outputs(path: Path, feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The model run here, directly, for reference."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for detail, feed in zip(interpreter.get_input_details(), feeds):
        interpreter.set_tensor(detail["index"], feed)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


def test_the_model_tensors_are_read_from_the_flatbuffer(models: Models):
    record = models.int8.compile_result
    io = read_tflite_io(models.int8.path)
    (image,) = io.inputs
    assert (image.name, image.shape, image.dtype) == (record.target_inputs[0].name, [1, 32, 32, 3], "int8")
    assert image.quantization == record.target_inputs[0].quantization
    # the subgraph's output order, which OutputSaver follows: logits first in this model
    assert [(o.name, o.shape) for o in io.outputs] == [(o.name, o.shape) for o in sorted(
        record.target_outputs, key=lambda o: len(o.shape))]
    assert io.signature is None  # one signature, on subgraph 0: benchmark_model's default


def test_the_only_signature_picks_the_subgraph_and_is_named_to_benchmark_model(two_inputs, tmp_path):
    io = read_tflite_io(two_inputs)  # no signature: subgraph 0
    assert [(i.name, i.dtype) for i in io.inputs] == [("scale:0", "float32"), ("count", "int32")]
    assert [(o.name, o.dtype, o.quantization) for o in io.outputs] == [("tripled", "int32", None),
                                                                     ("doubled", "float32", None)]
    def second_subgraph_signed(model: schema.ModelT) -> None:
        second = copy.deepcopy(model.subgraphs[0])
        second.tensors[second.inputs[0]].name = "in the second subgraph"
        model.subgraphs.append(second)
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex, signature.inputs, signature.outputs = "serving", 1, [], []
        model.signatureDefs = [signature]

    path = tmp_path / "signed.tflite"
    path.write_bytes(rewrite_tflite(two_inputs.read_bytes(), second_subgraph_signed))
    io = read_tflite_io(path)
    assert io.signature == "serving" and io.inputs[0].name == "in the second subgraph"
    (tmp_path / "not.tflite").write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(JobFailure, match="not a .tflite flatbuffer"):
        read_tflite_io(tmp_path / "not.tflite")


def test_inference_on_an_int8_target_gives_the_source_outputs(phone, tools, adb_key, tmp_path, models: Models):
    data = images(4, seed=3)
    record = models.int8.compile_result
    (image,) = record.target_inputs
    outcome = infer(tmp_path, android_device(tools, adb_key), models.int8.path, {"image": data},
                    compile_result=record)
    with np.load(outcome.outputs_path, allow_pickle=False) as out:
        assert set(out.files) == {"features", "logits"}
        assert out["features"].shape == (4, 1, 8, 16, 16) and out["logits"].shape == (4, 1, 2)
        for i, sample in enumerate(data):
            # the stand-in ran the pushed bytes: equal to this model run here on the same quantized NHWC input
            direct = interpreter_outputs(models.int8.path, [to_target(sample, image)])
            for target in record.target_outputs:
                np.testing.assert_array_equal(out[target.source_name][i], from_target(direct[target.name], target))
    q = image.quantization
    assert f"image → {image.name}: float32 NCHW [1, 3, 32, 32] → int8 NHWC [1, 32, 32, 3] " \
           f"(scale {q.scale:.6g}, zero point {q.zero_point})" in outcome.conversions
    assert any(c.startswith(f"{record.target_outputs[0].name} → features: int8 NHWC") for c in outcome.conversions)
    assert outcome.runtime == "tflite benchmark_model (benchmark_model), XNNPACK delegate"
    assert len(phone.benchmark_runs) == 4 and "but flags call it" not in outcome.log  # names matched the tensors
    first = phone.benchmark_runs[0]
    assert {"--num_runs=1", "--warmup_runs=0", "--min_secs=0", "--warmup_min_secs=0", "--use_xnnpack=true",
            f"--input_layer={image.name}", "--input_layer_shape=1,32,32,3", "--output_filepath=s0_out.bin",
            f"--input_layer_value_files={image.name.replace(':', '::')}:s0_in0.bin"} <= set(first)
    assert not any(a.startswith(("--enable_op_profiling", "--report_peak_memory", "--max_secs")) for a in first)
    chains = [c for c in phone.commands if "./benchmark_model" in c]
    assert len(chains) == 1 and chains[0].count(" && ") == 1 + 2 * 4 - 1  # cd, then echo + run per sample
    assert phone.commands[-1].startswith(f"rm -rf {REMOTE}/job-") and job_dirs(phone) == set()


def test_inference_on_a_model_without_a_record_feeds_it_as_given(phone, tools, adb_key, tmp_path, two_inputs,
                                                                 monkeypatch):
    monkeypatch.setattr("edgefarm_agent.backends.android.MAX_BATCH_SAMPLES", 2)  # 5 samples: 3 batches
    rng = np.random.default_rng(0)
    scale = rng.normal(size=(5, 1, 4))  # float64: narrowed to the input's float32, and said so
    count = rng.integers(-1000, 1000, size=(5, 1, 3), dtype=np.int32)
    outcome = infer(tmp_path, android_device(tools, adb_key), two_inputs, {"scale:0": scale, "count": count},
                    options="--compute_unit gpu")
    with np.load(outcome.outputs_path, allow_pickle=False) as out:
        np.testing.assert_allclose(out["doubled"], scale.astype(np.float32) * 2 + 1, rtol=1e-6)
        np.testing.assert_array_equal(out["tripled"], count * 3)
        assert out["doubled"].dtype == np.float32 and out["tripled"].dtype == np.int32
    assert outcome.conversions == ["scale:0: float64 → float32"]
    assert outcome.runtime.endswith("GPU delegate") and "--use_gpu=true" in phone.benchmark_runs[0]
    assert {"--input_layer=scale:0,count", "--input_layer_shape=1,4:1,3",
            "--input_layer_value_files=scale::0:s4_in0.bin,count:s4_in1.bin"} <= set(phone.benchmark_runs[4])
    assert len([c for c in phone.commands if "./benchmark_model" in c]) == 3
    removed = [c for c in phone.commands if c.startswith("rm -f ")]
    assert len(removed) == 3 and "s4_in1.bin" in removed[-1] and "s4_out.bin" in removed[-1]
    assert job_dirs(phone) == set()


def test_inference_without_a_dataset_runs_one_random_sample(phone, tools, adb_key, tmp_path, models: Models):
    outcome = infer(tmp_path, android_device(tools, adb_key), models.fp32.path,
                    compile_result=models.fp32.compile_result)
    with np.load(outcome.outputs_path, allow_pickle=False) as out:
        assert out["features"].shape == (1, 1, 8, 16, 16) and out["logits"].shape == (1, 1, 2)
    assert outcome.conversions[0].startswith("no input dataset: one sample of seeded random inputs")


def test_a_failing_sample_fails_the_job_with_the_tools_output_and_cleans_up(phone, tools, adb_key, tmp_path,
                                                                              models: Models):
    phone.failing_run, phone.benchmark_exit = 1, 1
    phone.benchmark_output = ("INFO: Loaded model model.tflite\nERROR: Node number 2 (CONV_2D) failed to invoke.\n"
                              "ERROR: Benchmarking failed.\n")
    with pytest.raises(JobFailure) as failure:
        infer(tmp_path, android_device(tools, adb_key), models.int8.path, {"image": images(3, seed=1)},
              compile_result=models.int8.compile_result)
    assert "exited with status 1 on sample 2 of 3" in failure.value.reason
    assert "Node number 2 (CONV_2D) failed to invoke" in failure.value.reason
    assert "Benchmarking failed." in failure.value.log and "edgefarm: sample 1 of 3" in failure.value.log
    assert len(phone.benchmark_runs) == 2  # the chain stopped at the failing sample
    assert job_dirs(phone) == set() and not (tmp_path / "work" / "outputs.npz").exists()


def test_a_benchmark_model_without_output_filepath_names_the_cause(phone, tools, adb_key, tmp_path, models: Models,
                                                                   monkeypatch):
    phone.benchmark_writes_outputs = False  # a build older than TFLite 2.14
    device = android_device(tools, adb_key)
    with pytest.raises(JobFailure) as failure:
        infer(tmp_path, device, models.int8.path, {"image": images(2, seed=1)},
              compile_result=models.int8.compile_result)
    reason = failure.value.reason
    assert "ran sample 1 but wrote no output file" in reason and "predates --output_filepath" in reason
    assert "TFLite 2.14 or newer" in reason and str(tools / "benchmark_model") in reason
    assert "Unconsumed cmdline flags: --output_filepath" in failure.value.log
    assert job_dirs(phone) == set()

    phone.benchmark_writes_outputs = True
    save = StandInBenchmark.save
    monkeypatch.setattr(StandInBenchmark, "save", lambda self, outputs: save(self, outputs[:-5]))  # a short file
    with pytest.raises(JobFailure) as failure:
        infer(tmp_path, device, models.int8.path, {"image": images(2, seed=1)},
              compile_result=models.int8.compile_result)
    assert f"wrote {2 + 16 * 16 * 8 - 5} bytes of outputs for sample 1, not the {2 + 16 * 16 * 8}" in \
        failure.value.reason and "predates --output_filepath" in failure.value.reason


def test_cancelling_an_inference_stops_it_and_cleans_up(phone, tools, adb_key, tmp_path, models: Models):
    cancelled = threading.Event()
    seen: list[str] = []

    def progress(message: str) -> None:
        seen.append(message)
        if message == "running benchmark_model on sample 2 of 3":
            cancelled.set()  # the lease is lost while the phone works through the samples

    with pytest.raises(JobCancelled):
        infer(tmp_path, android_device(tools, adb_key), models.int8.path, {"image": images(3, seed=1)},
              compile_result=models.int8.compile_result, cancelled=cancelled, progress=progress)
    assert "running benchmark_model on sample 1 of 3" in seen
    assert phone.commands[-1].startswith(f"rm -rf {REMOTE}/job-") and job_dirs(phone) == set()
    assert not (tmp_path / "work" / "outputs.npz").exists()


def test_inputs_benchmark_model_cannot_take_are_refused_before_the_phone_is_touched(phone, tools, adb_key, tmp_path,
                                                                                     two_inputs):
    def comma(model: schema.ModelT) -> None:
        model.subgraphs[0].tensors[model.subgraphs[0].inputs[1]].name = "count,2"

    model = tmp_path / "comma.tflite"
    model.write_bytes(rewrite_tflite(two_inputs.read_bytes(), comma))
    device = android_device(tools, adb_key)
    with pytest.raises(JobFailure, match=r"input 'count,2' cannot be named to benchmark_model.*comma-separated"):
        infer(tmp_path, device, model, {"scale:0": np.zeros((1, 1, 4), "f4"), "count,2": np.zeros((1, 1, 3), "i4")})
    with pytest.raises(JobFailure, match=r"sample 1: the model's input 'count' takes int32 \[1, 3\], but the data is "
                                         r"float32 \[1, 3\]"):
        infer(tmp_path, device, two_inputs, {"scale:0": np.zeros((1, 1, 4), "f4"), "count": np.zeros((1, 1, 3), "f4")})
    assert not any(c.startswith("mkdir") for c in phone.commands)


def test_filesync_pull_and_stat_through_the_fake_phone(phone, tools, adb_key):
    content = np.random.default_rng(1).bytes(200_000)  # several 64 KiB DATA packets
    phone.files["/data/local/tmp/big.bin"] = content
    backend = AndroidBackend(android_device(tools, adb_key), identify=False)
    with backend.session() as session:
        assert session.pull("/data/local/tmp/big.bin") == content
        assert session.pull("/data/local/tmp/missing.bin") is None  # adbd's FAIL: no such file
        assert session.adb.stat("/data/local/tmp/big.bin")[1] == len(content)
        assert session.pull("/data/local/tmp/big.bin") == content  # the connection is still good after a FAIL
