"""Profile and inference jobs, devices, and their CLI commands, without a farm.

The client talks to tests/sdk/peer.py, a real HTTP server that answers from a script and records every
request, so each test can say exactly which requests went out (none, when an argument is wrong).
"""

from __future__ import annotations

import io
import hashlib
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

import edgefarm as ef
import edgefarm.cli
import numpy as np
import pytest
from edgefarm.cli import app
from edgefarm.datasets import check_inputs, write_npz
from edgefarm.jobs import JOB_CLASSES, ReferenceJob, job_from_wire
from edgefarm.wire import DatasetOut, DeviceOut, JobOut, ModelOut, TensorInfo
from typer.testing import CliRunner

from tests.sdk.peer import Reply

NOW = "2026-11-22T10:00:00Z"
IMAGE = TensorInfo(name="image", shape=[1, 3, 8, 8], dtype="float32", layout="NCHW")
LOGITS = TensorInfo(name="logits", shape=[1, 10], dtype="float32")
INPUTS = {"image": [np.zeros((1, 3, 8, 8), np.float32)] * 2}


def model_out(model_id: str = "m_src", **changes: Any) -> dict[str, Any]:
    body = {
        "id": model_id,
        "name": "net",
        "format": "onnx",
        "sha256": "0" * 64,
        "size": 10,
        "inputs": [IMAGE.model_dump()],
        "outputs": [LOGITS.model_dump()],
        "created_at": NOW,
    }
    return {**body, **changes}


def compile_result() -> dict[str, Any]:
    """A target that takes int8 NHWC `serving_default_image:0` where the source took float32 NCHW `image`."""
    target_in = TensorInfo(
        name="serving_default_image:0", shape=[1, 8, 8, 3], dtype="int8", layout="NHWC", source_name="image"
    )
    target_out = TensorInfo(name="Identity:0", shape=[1, 10], dtype="int8", source_name="logits")
    return {
        "target_format": "tflite",
        "source_inputs": [IMAGE.model_dump()],
        "source_outputs": [LOGITS.model_dump()],
        "target_inputs": [target_in.model_dump()],
        "target_outputs": [target_out.model_dump()],
        "source_size": 10,
        "target_size": 5,
        "converter": "onnx2tf 1.29.24",
        "seconds": 1.0,
    }


def job_out(job_id: str, type: str, state: str = "CREATED", **changes: Any) -> dict[str, Any]:
    body = {
        "id": job_id,
        "type": type,
        "name": "net",
        "state": state,
        "model_id": "m_src",
        "device": {"name": "Pixel 8", "os": "", "attributes": []},
        "options": "",
        "created_at": NOW,
        "updated_at": NOW,
        "events": [{"state": state, "at": NOW, "message": ""}],
    }
    return {**body, **changes}


def dataset_out(dataset_id: str, entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": dataset_id,
        "name": "d",
        "sha256": "1" * 64,
        "size": 1,
        "entries": entries,
        "created_at": NOW,
    }


def profile_result(*, cpu_fallback: bool = False, ops: bool = True) -> dict[str, Any]:
    stats = {"min": 500.0, "median": 540.0, "mean": 545.0, "p90": 610.0, "p99": 700.0, "std": 30.0}
    detail = [
        {
            "name": "conv1",
            "type": "CONV_2D",
            "compute_unit": "NPU",
            "delegate": "npu",
            "execution_time": 300.0,
        },
        {"name": "softmax", "type": "SOFTMAX", "compute_unit": "CPU", "execution_time": 100.0},
    ]
    return {
        "execution_summary": {
            "estimated_inference_time": 540.0,
            "estimated_inference_peak_memory": 12_400_000,
            "first_load_time": 12_300.0,
            "warm_load_time": 3_100.0,
            "all_inference_times": [500.0, 540.0, 700.0],
            "inference_stats": stats,
            "iterations": 3,
            "warmup_iterations": 1,
            "compute_unit": "npu",
            "delegate": "libnpu.so",
            "delegated_ops": 1,
            "total_ops": 2,
            "cpu_fallback": cpu_fallback,
        },
        "execution_detail": detail if ops else [],
        "runtime": "litert 2.1.0",
        "device": {"name": "Pixel 8", "serial": "abc123", "os": "android 14"},
    }


@pytest.fixture
def client(peer):
    with ef.Client(api_url=peer.url, api_token="t", max_retries=0) as client:
        yield client


@pytest.fixture
def cli_env(peer, monkeypatch):
    monkeypatch.setenv("EDGEFARM_API_URL", peer.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", "t")


def local_model(client: ef.Client, **changes: Any) -> ef.Model:
    return ef.Model(client, ModelOut.model_validate(model_out(**changes)))


def paths(peer) -> list[str]:
    """Requests as "METHOD /path"; a content hash in a query reads <hash>."""
    return [re.sub(r"sha256=[0-9a-f]{64}", "sha256=<hash>", f"{s.method} {s.path.removeprefix('/api/v1')}")
            for s in peer.seen]


# -- arguments are checked before any request ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--compute_unit tpu", "--compute_unit must be one of all, cpu, gpu, npu"),
        ("--max_profiler_iterations 0", "--max_profiler_iterations must be a whole number"),
        ("--tflite_options number_of_threads=x", "number_of_threads must be a whole number"),
        ("--bogus", "unknown option --bogus"),
    ],
)
def test_profile_options_fail_before_any_request(client, peer, tmp_path, options, message):
    model = tmp_path / "net.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3")
    with pytest.raises(ef.OptionsError, match=message):
        client.jobs.submit_profile(model, "Pixel 8", options=options, input_data=INPUTS)
    assert peer.seen == []


def test_inference_takes_runtime_options_only(client, peer):
    compile_job = ef.CompileJob(client, JobOut.model_validate(job_out("j_c", "compile", "OPTIMIZING_MODEL")))
    with pytest.raises(ef.OptionsError, match="unknown option --max_profiler_iterations"):
        client.jobs.submit_inference(compile_job, "Pixel 8", INPUTS, options="--max_profiler_iterations 5")
    assert peer.seen == []  # not even waiting for the compile job


def test_module_functions_check_options_first(peer, monkeypatch):
    monkeypatch.setenv("EDGEFARM_API_URL", peer.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", "t")
    with pytest.raises(ef.OptionsError):
        ef.submit_profile_job(b"\x1c\x00\x00\x00TFL3", ef.Device("Pixel 8"), options="--nope")
    with pytest.raises(ef.OptionsError):
        ef.submit_inference_job(b"\x1c\x00\x00\x00TFL3", ef.Device("Pixel 8"), INPUTS, options="--nope")
    assert peer.seen == []


@pytest.mark.parametrize(
    ("model", "kwargs", "error", "message"),
    [
        ("net.tflite", {"device": 42}, TypeError, "device name"),
        ("net.pt", {}, ValueError, "compile it first"),
        ("net.h5", {}, ValueError, r"\.onnx, \.pt"),
        (
            "net.tflite",
            {"inputs": {"image": [np.zeros(3)] * 2, "x": [np.zeros(3)]}},
            ValueError,
            "same number",
        ),
        ("net.tflite", {"inputs": {"image": np.zeros((2, 3))}}, TypeError, r"list\(array\)"),
        ("net.tflite", {"inputs": None}, ValueError, "needs inputs"),
    ],
)
def test_bad_arguments_fail_before_any_request(client, peer, tmp_path, model, kwargs, error, message):
    path = tmp_path / model
    path.write_bytes(b"\x1c\x00\x00\x00TFL3")
    arguments = {"device": "Pixel 8", "inputs": INPUTS, **kwargs}
    with pytest.raises(error, match=message):
        client.jobs.submit_inference(path, **arguments)
    assert peer.seen == []


def test_only_a_compile_job_can_stand_for_a_model(client, peer):
    profile_job = ef.ProfileJob(client, JobOut.model_validate(job_out("j_p", "profile")))
    with pytest.raises(TypeError, match="CompileJob"):
        client.jobs.submit_profile(profile_job, "Pixel 8")
    with pytest.raises(ValueError, match="compile it first"):
        client.jobs.submit_profile(local_model(client, format="torchscript"), "Pixel 8")
    assert peer.seen == []


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"img": [np.zeros((1, 3, 8, 8), np.float32)]}, "missing: image, unknown: img"),
        ({"image": [np.zeros((3, 8, 8), np.float32)]}, r"shape \(1, 3, 8, 8\).*got \(3, 8, 8\)"),
        ({"image": [np.zeros((1, 3, 8, 8))]}, r"takes float32; got float64 \(convert with array.astype"),
    ],
)
def test_inputs_must_fit_a_source_model_before_upload(client, peer, inputs, message):
    with pytest.raises(ValueError, match=message):
        client.jobs.submit_inference(local_model(client), "Pixel 8", inputs)
    assert peer.seen == []


def test_inputs_of_a_compiled_target_are_the_source_models(client, peer):
    """A target speaks its source's language: its producer job tells which (one GET, no upload)."""
    target = local_model(
        client,
        model_id="m_tgt",
        format="tflite",
        producer_job_id="j_c",
        inputs=[compile_result()["target_inputs"][0]],
    )
    peer.then(
        Reply(200, job_out("j_c", "compile", "SUCCESS", target_model_id="m_tgt", result=compile_result()))
    )
    with pytest.raises(ValueError, match="unknown: serving_default_image:0"):
        client.jobs.submit_inference(
            target, "Pixel 8", {"serving_default_image:0": [np.zeros((1, 8, 8, 3), np.int8)]}
        )
    assert paths(peer) == ["GET /jobs/j_c"]


def test_an_uploaded_dataset_is_checked_too(client, peer):
    entries = {"image": {"count": 2, "shape": [1, 3, 9, 9], "dtype": "float32"}}
    dataset = ef.Dataset(client, DatasetOut.model_validate(dataset_out("d_in", entries)))
    with pytest.raises(ValueError, match=r"input_data\['image'\]: each sample must have shape"):
        client.jobs.submit_profile(local_model(client), "Pixel 8", input_data=dataset)
    assert peer.seen == []


def test_check_inputs_lets_symbolic_dimensions_take_any_size():
    dynamic = [TensorInfo(name="tokens", shape=["batch", 16], dtype="int64")]
    check_inputs({"tokens": ((4, 16), "int64")}, dynamic, argument="inputs")
    with pytest.raises(ValueError, match=r"shape \('batch', 16\)"):
        check_inputs({"tokens": ((4, 17), "int64")}, dynamic, argument="inputs")


# -- model resolution and the requests sent ------------------------------------------------------------------


# The SDK asks by content hash before uploading; this answer means the farm does not have the bytes yet.
NOT_STORED = Reply(200, {"items": [], "total": 0, "offset": 0, "limit": 1})


def test_inference_from_a_compile_job_waits_and_uses_its_target(client, peer):
    compile_job = ef.CompileJob(client, JobOut.model_validate(job_out("j_c", "compile", "OPTIMIZING_MODEL")))
    entries = {"image": {"count": 2, "shape": [1, 3, 8, 8], "dtype": "float32"}}
    peer.then(
        Reply(200, job_out("j_c", "compile", "SUCCESS", target_model_id="m_tgt", result=compile_result())),
        Reply(
            200,
            model_out(
                "m_tgt", format="tflite", producer_job_id="j_c", inputs=[compile_result()["target_inputs"][0]]
            ),
        ),
        NOT_STORED,
        Reply(201, dataset_out("d_in", entries)),
        Reply(201, job_out("j_i", "inference", model_id="m_tgt", input_dataset_id="d_in")),
    )
    job = client.jobs.submit_inference(
        compile_job, ef.Device("Pixel 8", os="android 14"), INPUTS, name="seg", options="--compute_unit cpu"
    )
    assert isinstance(job, ef.InferenceJob) and job.input_dataset_id == "d_in"
    assert paths(peer) == ["GET /jobs/j_c", "GET /models/m_tgt", "GET /datasets?sha256=<hash>&limit=1",
                           "POST /datasets", "POST /jobs/inference"]
    assert b'name="name"\r\n\r\nseg inputs' in peer.seen[3].body
    assert json.loads(peer.seen[4].body) == {
        "model_id": "m_tgt",
        "device": {"name": "Pixel 8", "os": "android 14", "attributes": []},
        "name": "seg",
        "options": "--compute_unit cpu",
        "input_dataset_id": "d_in",
    }


def test_a_failed_compile_job_submits_nothing(client, peer):
    compile_job = ef.CompileJob(client, JobOut.model_validate(job_out("j_c", "compile", "OPTIMIZING_MODEL")))
    peer.then(Reply(200, job_out("j_c", "compile", "FAILED", failure_reason="onnx2tf has no QuickGelu")))
    with pytest.raises(ef.JobFailedError, match="QuickGelu"):
        client.jobs.submit_profile(compile_job, "Pixel 8")
    assert paths(peer) == ["GET /jobs/j_c"]


def test_profile_of_a_file_uploads_it_under_the_job_name(client, peer):
    peer.then(
        NOT_STORED,
        Reply(201, model_out("m_up", format="tflite")),
        Reply(201, job_out("j_p", "profile", model_id="m_up")),
    )
    job = client.jobs.submit_profile(b"\x1c\x00\x00\x00TFL3", "Pixel 8", name="quick")
    assert isinstance(job, ef.ProfileJob) and job.profile is None and job.device_id is None
    assert paths(peer) == ["GET /models?sha256=<hash>&limit=1", "POST /models", "POST /jobs/profile"]
    assert b'filename="model.tflite"' in peer.seen[1].body and b"quick" in peer.seen[1].body
    sent = json.loads(peer.seen[2].body)
    assert sent["model_id"] == "m_up" and sent["input_dataset_id"] is None and sent["options"] == ""


def test_job_classes_follow_the_type(client, peer):
    assert JOB_CLASSES == {
        ef.JobType.COMPILE: ef.CompileJob,
        ef.JobType.PROFILE: ef.ProfileJob,
        ef.JobType.INFERENCE: ef.InferenceJob,
        ef.JobType.REFERENCE: ReferenceJob,
    }
    for job_type, cls in [
        ("compile", ef.CompileJob),
        ("profile", ef.ProfileJob),
        ("inference", ef.InferenceJob),
        ("reference", ReferenceJob),
    ]:
        assert type(job_from_wire(client, JobOut.model_validate(job_out("j", job_type)))) is cls
    peer.then(Reply(200, job_out("j_p", "profile", "PROVISIONING_DEVICE", device_id="v_1")))
    fetched = client.jobs.get("j_p")
    assert isinstance(fetched, ef.ProfileJob) and fetched.device_id == "v_1"
    assert fetched.state == ef.JobState.PROVISIONING_DEVICE and len(peer.seen) == 1


# -- results -------------------------------------------------------------------------------------------------


def test_download_profile_is_ai_hubs_dict_and_can_be_saved(client, peer, tmp_path):
    job = ef.ProfileJob(client, JobOut.model_validate(job_out("j_p", "profile", "MEASURING_PERFORMANCE")))
    peer.then(Reply(200, job_out("j_p", "profile", "SUCCESS", result=profile_result())))
    profile = job.download_profile(tmp_path / "p.json")
    summary = profile["execution_summary"]
    assert (
        summary["estimated_inference_time"] == 540.0
        and summary["estimated_inference_peak_memory"] == 12_400_000
    )
    assert profile["execution_detail"][0]["compute_unit"] == "NPU"
    assert json.loads((tmp_path / "p.json").read_text()) == profile
    assert isinstance(job.profile, ef.Profile) and job.profile.execution_summary.inference_stats.p99 == 700.0
    assert len(peer.seen) == 1  # finished: asked once


def test_download_profile_of_a_failed_job_raises_with_the_reason(client, peer):
    job = ef.ProfileJob(client, JobOut.model_validate(job_out("j_p", "profile", "PROVISIONING_DEVICE")))
    peer.then(Reply(200, job_out("j_p", "profile", "FAILED", failure_reason="delegate failed [on Pixel 8]")))
    with pytest.raises(ef.JobFailedError, match="delegate failed") as caught:
        job.download_profile()
    assert caught.value.job is job and job.profile is None


def outputs_npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    write_npz(arrays, buffer)
    return buffer.getvalue()


def test_download_output_data_splits_samples_per_output(client, peer, tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.random((3, 1, 10), dtype=np.float32)
    mask = rng.random((3, 1, 1, 8, 8), dtype=np.float32)
    result = {
        "output_dataset_id": "d_out",
        "runtime": "litert 2.1.0",
        "seconds": 0.1,
        "outputs": {"logits": {"count": 3, "shape": [1, 10], "dtype": "float32"}},
        "conversions": ["image: float32 NCHW → int8 NHWC (scale 0.0039, zp -128)"],
    }
    job = ef.InferenceJob(client, JobOut.model_validate(job_out("j_i", "inference", "RUNNING_INFERENCE")))
    payload = outputs_npz({"logits": logits, "mask": mask})
    peer.then(
        Reply(200, job_out("j_i", "inference", "SUCCESS", result=result)),
        Reply(200, payload),
        Reply(200, payload),
    )
    outputs = job.download_output_data()
    assert sorted(outputs) == ["logits", "mask"] and len(outputs["logits"]) == 3
    for i in range(3):
        np.testing.assert_array_equal(outputs["logits"][i], logits[i])
        assert outputs["mask"][i].shape == (1, 1, 8, 8)
    assert job.output_dataset_id == "d_out" and job.result.conversions[0].startswith("image:")

    saved = job.download_output_data(tmp_path)  # a directory: named after the job
    assert (tmp_path / "net_outputs.npz").read_bytes() == payload
    np.testing.assert_array_equal(saved["mask"][2], mask[2])
    assert paths(peer)[1:] == ["GET /datasets/d_out/download"] * 2


# -- devices -------------------------------------------------------------------------------------------------


def device_out(serial: str, state: str = "online", **changes: Any) -> dict[str, Any]:
    body = {
        "id": f"v_{serial}",
        "name": "Pixel 8",
        "serial": serial,
        "os": "android 14",
        "attributes": ["framework:tflite", "accelerator:npu"],
        "agent_id": "a_1",
        "agent_name": "lab-1",
        "state": state,
        "last_seen_at": NOW,
        "current_job_id": None,
    }
    return {**body, **changes}


def test_device_is_a_selector_and_a_listed_device():
    selector = ef.Device("Pixel 8")
    assert (
        selector.name == "Pixel 8" and selector.id is None and selector.state is None and not selector.online
    )
    assert repr(selector) == "Device(name='Pixel 8', os='', attributes=[])"
    listed = ef.Device.from_out(DeviceOut.model_validate(device_out("s1", "busy", current_job_id="j_p")))
    assert listed.serial == "s1" and listed.agent_name == "lab-1" and listed.online
    assert listed.last_seen_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert listed.to_wire().model_dump() == {
        "name": "Pixel 8",
        "os": "android 14",
        "attributes": ["framework:tflite", "accelerator:npu"],
    }
    assert "serial='s1'" in repr(listed) and "current_job_id='j_p'" in repr(listed)
    # The same device seen later is still equal; another device of the pool is not.
    later = ef.Device.from_out(DeviceOut.model_validate(device_out("s1", "offline", last_seen_at=None)))
    assert later == listed and later != ef.Device.from_out(DeviceOut.model_validate(device_out("s2")))
    with pytest.raises(TypeError):
        ef.Device("Pixel 8", "android 14", [], "v_1")  # server fields are keyword-only


def test_get_devices_sends_the_filters(peer, monkeypatch):
    monkeypatch.setenv("EDGEFARM_API_URL", peer.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", "t")
    peer.then(Reply(200, [device_out("s1"), device_out("s2", "offline")]), Reply(200, []))
    devices = ef.get_devices(os="[12,15)", attributes=["framework:tflite", "accelerator:npu"])
    assert [d.serial for d in devices] == ["s1", "s2"] and [d.online for d in devices] == [True, False]
    assert (
        peer.seen[0].path
        == "/api/v1/devices?os=%5B12%2C15%29&attributes=framework%3Atflite%2Caccelerator%3Anpu"
    )
    assert ef.get_devices("Pixel 8", attributes="framework:tflite") == []
    assert peer.seen[1].path == "/api/v1/devices?name=Pixel+8&attributes=framework%3Atflite"
    with pytest.raises(ValueError, match="cannot contain ','"):
        ef.get_devices(attributes=["a,b"])
    assert len(peer.seen) == 2


# -- CLI -----------------------------------------------------------------------------------------------------


def test_cli_devices_table(peer, cli_env, monkeypatch):
    monkeypatch.setattr(edgefarm.cli.console, "width", 160)  # CliRunner's 80 columns would fold the values
    recent = datetime.now(UTC).isoformat()
    old = "2026-01-02T03:04:05Z"
    peer.then(
        Reply(
            200,
            [
                device_out("s1", "busy", current_job_id="j_p", last_seen_at=recent),
                device_out("s2", "offline", last_seen_at=old),
            ],
        )
    )
    result = CliRunner().invoke(
        app,
        ["devices", "--name", "Pixel 8", "--attribute", "framework:tflite", "--attribute", "accelerator:npu"],
    )
    assert result.exit_code == 0, result.output
    assert peer.seen[0].path.endswith("name=Pixel+8&attributes=framework%3Atflite%2Caccelerator%3Anpu")
    for text in [
        "SERIAL",
        "LAST SEEN",
        "s1",
        "busy",
        "s ago",
        "j_p",
        "offline",
        "2026-01-02",
        "android 14",
        "accelerator:npu",
    ]:
        assert text in result.stdout, text

    peer.then(Reply(200, []))
    empty = CliRunner().invoke(app, ["devices"])
    assert empty.exit_code == 0 and "edgefarm agent --server" in empty.stderr


def test_cli_bad_options_exit_1_without_requests(peer, cli_env, tmp_path):
    model = tmp_path / "net.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3")
    result = CliRunner().invoke(app, ["profile", str(model), "--device", "Pixel 8", "--options", "--bogus"])
    assert result.exit_code == 1 and result.output.startswith("error: unknown option --bogus")
    inputs = tmp_path / "in.npz"
    np.savez(inputs, image=np.zeros((2, 1, 3, 8, 8), np.float32))
    result = CliRunner().invoke(
        app,
        [
            "infer",
            str(model),
            "--device",
            "Pixel 8",
            "--inputs",
            str(inputs),
            "-o",
            str(tmp_path / "out.npz"),
            "--options",
            "--warmup_iterations 2",
        ],
    )
    assert result.exit_code == 1 and "unknown option --warmup_iterations" in result.output
    assert peer.seen == []


def test_cli_profile_of_a_compile_job_prints_the_summary(peer, cli_env, tmp_path):
    peer.then(
        Reply(200, job_out("j_c", "compile", "SUCCESS", target_model_id="m_tgt", result=compile_result())),
        Reply(200, model_out("m_tgt", format="tflite", producer_job_id="j_c")),
        Reply(201, job_out("j_p", "profile", model_id="m_tgt")),
        Reply(200, job_out("j_p", "profile", "SUCCESS", result=profile_result(cpu_fallback=True))),
    )
    out = tmp_path / "profile.json"
    result = CliRunner().invoke(
        app, ["profile", "j_c", "--device", "Pixel 8", "--options", "--compute_unit npu", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert paths(peer) == ["GET /jobs/j_c", "GET /models/m_tgt", "POST /jobs/profile", "GET /jobs/j_p"]
    text = " ".join(result.stdout.split())
    for expected in [
        "j_p SUCCESS",
        "median 0.54 ms",
        "min 0.5 ms",
        "p90 0.61 ms",
        "p99 0.7 ms",
        "12.4 MB",
        "first 12.3 ms, warm 3.1 ms",
        "libnpu.so, 1 of 2 ops",
        "warning: part of the model ran on the CPU although --compute_unit npu was asked",
        "1 on CPU, 1 on NPU",
        "top 2 ops by time",
        "conv1 CONV_2D NPU 0.3 ms 75%",
    ]:
        assert expected in text, expected
    assert json.loads(out.read_text())["execution_summary"]["cpu_fallback"] is True


def test_cli_profile_refuses_a_job_that_is_not_a_compile_job(peer, cli_env):
    peer.then(Reply(200, job_out("j_p", "profile")))
    result = CliRunner().invoke(app, ["profile", "j_p", "--device", "Pixel 8"])
    assert result.exit_code == 2 and "is a profile job" in result.output


def test_cli_infer_saves_the_outputs(peer, cli_env, tmp_path):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, image=np.zeros((2, 1, 3, 8, 8), np.float32))
    logits = np.arange(20, dtype=np.float32).reshape(2, 1, 10)
    result_body = {
        "output_dataset_id": "d_out",
        "runtime": "litert 2.1.0",
        "seconds": 0.25,
        "outputs": {"logits": {"count": 2, "shape": [1, 10], "dtype": "float32"}},
    }
    entries = {"image": {"count": 2, "shape": [1, 3, 8, 8], "dtype": "float32"}}
    peer.then(
        Reply(200, model_out("m_src")),
        NOT_STORED,
        Reply(201, dataset_out("d_in", entries)),
        Reply(201, job_out("j_i", "inference", input_dataset_id="d_in")),
        Reply(200, job_out("j_i", "inference", "SUCCESS", result=result_body)),
        Reply(200, dataset_out("d_out", result_body["outputs"])),
        Reply(200, outputs_npz({"logits": logits})),
    )
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(
        app, ["infer", "m_src", "--device", "Pixel 8", "--inputs", str(inputs), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert paths(peer) == [
        "GET /models/m_src",
        "GET /datasets?sha256=<hash>&limit=1",
        "POST /datasets",
        "POST /jobs/inference",
        "GET /jobs/j_i",
        "GET /datasets/d_out",
        "GET /datasets/d_out/download",
    ]
    assert (
        "j_i SUCCESS → outputs dataset d_out" in result.stdout
        and "logits: 2 × float32[1, 10]" in result.stdout
    )
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["logits"], logits)


def test_cli_agent_execs_the_agent_with_the_same_arguments(monkeypatch):
    # Other tests of this session import the agent; forget it so this test sees what the CLI itself imports.
    for name in [m for m in sys.modules if m == "edgefarm_agent" or m.startswith("edgefarm_agent.")]:
        monkeypatch.delitem(sys.modules, name)
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(edgefarm.cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    arguments = ["--server", "http://farm:8000", "--token", "ef_x", "--config", "agent.toml", "--help"]
    result = CliRunner().invoke(app, ["agent", *arguments])
    assert result.exit_code == 0, result.output
    assert calls == [(sys.executable, [sys.executable, "-m", "edgefarm_agent", *arguments])]
    assert "edgefarm_agent" not in sys.modules  # located, never imported


def test_cli_jobs_show_includes_the_profile(peer, cli_env):
    done = job_out(
        "j_p", "profile", "SUCCESS", device_id="v_1", input_dataset_id="d_in", result=profile_result()
    )
    peer.then(Reply(200, done))
    result = CliRunner().invoke(app, ["jobs", "show", "j_p"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "ran on v_1" in text and "inputs d_in" in text and "median 0.54 ms" in text and "conv1" in text


def test_cli_agent_says_how_to_install_a_missing_agent(monkeypatch):
    monkeypatch.setattr(edgefarm.cli.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(edgefarm.cli.os, "execv", lambda *a: pytest.fail("nothing to exec"))
    result = CliRunner().invoke(app, ["agent", "--server", "http://farm:8000"])
    assert result.exit_code == 1 and "pip install 'edgefarm[agent]'" in result.output


def test_bytes_the_farm_already_has_are_not_uploaded_again(client, peer):
    stored = model_out("m_known", format="tflite")
    peer.then(
        Reply(200, {"items": [stored], "total": 1, "offset": 0, "limit": 1}),
        Reply(201, job_out("j_p", "profile", model_id="m_known")),
    )
    content = b"\x1c\x00\x00\x00TFL3"
    job = client.jobs.submit_profile(content, "Pixel 8")
    assert job.model_id == "m_known"
    assert paths(peer) == ["GET /models?sha256=<hash>&limit=1", "POST /jobs/profile"]
    assert hashlib.sha256(content).hexdigest() in peer.seen[0].path
