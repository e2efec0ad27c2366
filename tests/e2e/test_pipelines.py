"""The delivery loop through real processes: compile on the Celery worker, the FP32 reference on the worker,
profile and inference on a real host agent, the gateway's driver evaluating, gating and registering."""

from __future__ import annotations

import os
import secrets
import shutil
import signal

import httpx
import numpy as np
import pytest

import edgefarm as ef
from edgefarm.wire import JobType, PipelineState
from tests import nets
from tests.e2e.test_device_jobs import host_device

pytestmark = pytest.mark.e2e

INT8 = "--quantize_full_type int8 --quantize_io"
PROFILE = "--max_profiler_iterations 10"


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    return nets.write_segmenter_onnx(tmp_path_factory.mktemp("pipelines") / "segmenter.onnx")


@pytest.fixture(scope="module")
def evaluation():
    images, masks, _ = nets.shapes(12, seed=321)
    calibration = nets.shapes(32, seed=11)[0]
    # One array per sample, each shaped as the model's tensor (batch of 1), as every SDK dataset argument.
    return {"inputs": {"image": list(images[:, None])}, "truth": {"mask": list(masks[:, None])},
            "calibration": {"image": list(calibration[:, None])}}


def submit(client, model, pool, evaluation, *, name=None, gates=None, options=INT8, calibration=None, **extra):
    return client.pipelines.submit(
        model, name or f"seg-{secrets.token_hex(3)}", [ef.Device(pool)], compile_options=options,
        calibration_data=calibration if calibration is not None else evaluation["calibration"],
        eval_inputs=evaluation["inputs"], ground_truth=evaluation["truth"], profile_options=PROFILE,
        metric={"name": "iou", "output": "mask", "threshold": 0.5},
        gates=gates or {"max_metric_drop": 0.05, "max_latency_ms": 5000}, **extra)


def test_a_passing_pipeline_registers_one_version_with_its_evidence(farm, client, segmenter, evaluation):
    with host_device(farm) as pool:
        pipeline = submit(client, segmenter, pool, evaluation, gates={
            "max_metric_drop": 0.05, "min_metric": 0.5, "max_latency_ms": 5000, "latency_percentile": "p90",
            "max_model_size_mb": 1, "max_peak_memory_mb": 2048})
        assert pipeline.wait(timeout=300) == PipelineState.SUCCESS, pipeline.failure_reason

    report = pipeline.report
    assert report["passed"] and pipeline.version == 1 and report["version"] == 1
    [device] = report["devices"]
    scores = device["metrics"]
    # The tiny segmenter is trained: FP32 and INT8 both segment the shapes, and agree with each other.
    assert scores["fp32_vs_truth"] > 0.8 and scores["device_vs_truth"] > 0.8
    assert scores["device_vs_fp32"] > 0.9 and scores["pixel_agreement"] > 0.97 and scores["fp32_self"] == 1.0
    assert abs(scores["fp32_vs_truth"] - scores["device_vs_truth"]) < 0.05
    assert 0 < device["profile"]["median_ms"] <= device["profile"]["p90_ms"]
    assert device["target_model"]["format"] == "tflite"
    assert device["target_model"]["size"] < report["source_model"]["size"]
    assert {g["gate"] for g in report["gates"]} == {"max_metric_drop", "min_metric", "max_latency_ms",
                                                     "max_model_size_mb", "max_peak_memory_mb"}
    assert all(g["passed"] for g in report["gates"])
    latency = next(g for g in report["gates"] if g["gate"] == "max_latency_ms")
    assert latency["measured"] == pytest.approx(device["profile"]["p90_ms"])

    # The pipeline ran as ordinary jobs, visible as such.
    jobs = pipeline.jobs()
    assert sorted(j.data.type.value for j in jobs) == ["compile", "inference", "profile", "reference"]
    assert all(j.get_status().success for j in jobs)
    reference = next(j for j in jobs if j.data.type == JobType.REFERENCE)
    assert reference.result.runtime.startswith("onnxruntime")

    # Exactly one version, holding the evidence.
    registered = client.registry.get(pipeline.name)
    assert [v.number for v in registered.versions] == [1]
    version = client.registry.version(pipeline.name, 1)
    assert version.evidence["pipeline_id"] == pipeline.id
    assert version.evidence["gates"] == report["gates"]
    assert version.targets[0].model_id == device["target_model"]["id"]


def test_a_failing_gate_registers_nothing_and_names_the_gate(farm, client, segmenter, evaluation):
    name = f"seg-{secrets.token_hex(3)}"
    with host_device(farm) as pool:
        pipeline = submit(client, segmenter, pool, evaluation, name=name,
                          gates={"max_metric_drop": 0.05, "max_latency_ms": 0.001})
        assert pipeline.wait(timeout=300) == PipelineState.FAILED

    assert pipeline.version is None and not pipeline.report["passed"]
    assert "max_latency_ms" in pipeline.failure_reason and "nothing registered" in pipeline.failure_reason
    verdicts = {g["gate"]: g["passed"] for g in pipeline.report["gates"]}
    assert verdicts == {"max_metric_drop": True, "max_latency_ms": False}
    with pytest.raises(ef.NotFoundError):
        client.registry.get(name)


def test_bad_calibration_fails_the_accuracy_gate(farm, client, segmenter, evaluation):
    """INT8 ranges calibrated on near-black images clip every real activation: the IoU drop gate catches it."""
    dark = {"image": [image * 0.02 for image in evaluation["calibration"]["image"]]}
    with host_device(farm) as pool:
        pipeline = submit(client, segmenter, pool, evaluation, calibration=dark,
                          gates={"max_metric_drop": 0.01})
        assert pipeline.wait(timeout=300) == PipelineState.FAILED
    [gate] = pipeline.report["gates"]
    assert gate["gate"] == "max_metric_drop" and not gate["passed"] and gate["measured"] > 0.01


def test_promote_and_rollback_change_what_a_device_fetches(farm, client, segmenter, evaluation, gateway):
    name = f"seg-{secrets.token_hex(3)}"
    with host_device(farm) as pool:
        first = submit(client, segmenter, pool, evaluation, name=name)
        second = submit(client, segmenter, pool, evaluation, name=name, options="--quantize_full_type int8")
        assert first.wait(timeout=300) == PipelineState.SUCCESS, first.failure_reason
        assert second.wait(timeout=300) == PipelineState.SUCCESS, second.failure_reason
    numbers = {first.version, second.version}
    assert numbers == {1, 2}
    fleet = client.tokens.create("fleet-test", role="fleet").token
    url = f"{gateway.url}/api/v1/registry/models/{name}/channels/production/artifact"

    def fetch(etag: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {fleet}", **({"If-None-Match": etag} if etag else {})}
        return httpx.get(url, params={"device": pool}, headers=headers)

    assert fetch().status_code == 404  # nothing promoted yet
    client.registry.promote(name, 1, "production", reason="first release")
    v1 = fetch()
    assert v1.status_code == 200 and v1.headers["x-edgefarm-version"] == "1"
    assert fetch(v1.headers["etag"]).status_code == 304  # unchanged: not downloaded again
    client.registry.promote(name, 2, "production", reason="int8 with float I/O")
    v2 = fetch(v1.headers["etag"])
    assert v2.status_code == 200 and v2.headers["x-edgefarm-version"] == "2" and v2.content != v1.content
    client.registry.rollback(name, "production", reason="regression in the field")
    back = fetch(v2.headers["etag"])
    assert back.status_code == 200 and back.headers["x-edgefarm-version"] == "1" and back.content == v1.content


def test_a_failed_compile_fails_the_pipeline_with_the_converters_message(farm, client, evaluation, tmp_path):
    model = nets.write_unconvertible_onnx(tmp_path / "unconvertible.onnx")
    images = {"image": list(np.zeros((2, 1, 3, nets.IMAGE_SIZE, nets.IMAGE_SIZE), np.float32))}
    with host_device(farm) as pool:
        pipeline = client.pipelines.submit(
            model, f"bad-{secrets.token_hex(3)}", [ef.Device(pool)], compile_options="", eval_inputs=images,
            metric="cosine", gates={"min_metric": 0.99})
        assert pipeline.wait(timeout=300) == PipelineState.FAILED
    assert pipeline.failure_reason.startswith("compile job ")
    assert "QuickGelu" in pipeline.failure_reason


@pytest.mark.parametrize("change, message", [
    ({"metric": "dice"}, "unknown metric 'dice'"),
    ({"metric": {"name": "iou", "treshold": 0.5}}, "unknown param treshold"),
    ({"gates": {"latency_percentile": "p90"}}, "give at least one of"),
    ({"gates": {"max_latency": 30}}, "max_latency\n  Extra inputs are not permitted"),
    ({"gates": {"max_latency_ms": float("inf")}}, "max_latency_ms\n  Input should be a finite number"),
    ({"metric": "psnr", "ground_truth": None}, "max_metric_drop with metric psnr needs ground_truth"),
    ({"ground_truth": {"logits": list(np.zeros((12, 1, 1, 32, 32), np.float32))}}, "must hold the judged output"),
    ({"devices": ["No Such Phone"]}, "no device matches 'No Such Phone'"),
    ({"name": "bad name!"}, "is not a registry model name"),
])
def test_spec_mistakes_are_refused_before_anything_runs(farm, client, segmenter, evaluation, change, message):
    spec = {"name": f"seg-{secrets.token_hex(3)}", "devices": ["Host CPU"], "compile_options": INT8,
            "calibration_data": evaluation["calibration"], "eval_inputs": evaluation["inputs"],
            "ground_truth": evaluation["truth"], "metric": "iou", "gates": {"max_metric_drop": 0.01}, **change}
    with host_device(farm) as pool:
        spec["devices"] = [pool if d == "Host CPU" else d for d in spec["devices"]]
        before = client.jobs.list(limit=1).total
        with pytest.raises((ef.BadRequestError, ValueError), match=message):
            client.pipelines.submit(segmenter, **spec)
        assert client.jobs.list(limit=1).total == before


def test_a_gateway_killed_mid_pipeline_leaves_it_to_the_next_one(farm, client, segmenter, evaluation):
    """The pipeline's state is its row: a gateway SIGKILLed while it waits on the jobs is replaced by another
    that finishes the pipeline from the database, with the same verdict."""
    with host_device(farm) as pool:
        pipeline = submit(client, segmenter, pool, evaluation, options="--quantize_full_type int8",
                          calibration={"image": evaluation["calibration"]["image"][:24]})
        gateway = next(p for p in farm.farm.processes if p.name == "gateway")
        os.killpg(gateway.popen.pid, signal.SIGKILL)
        gateway.popen.wait()
        farm.farm.processes.remove(gateway)
        farm.farm.start_gateway()
        assert pipeline.wait(timeout=300) == PipelineState.SUCCESS, pipeline.failure_reason
    assert pipeline.version == 1 and pipeline.report["passed"]
    assert [v.number for v in client.registry.get(pipeline.name).versions] == [1]


def test_the_cli_runs_a_spec_file_and_exits_1_on_a_failed_gate(farm, segmenter, evaluation, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgefarm.cli import app
    from edgefarm.datasets import write_npz

    for file, arrays in (("eval.npz", evaluation["inputs"]), ("truth.npz", evaluation["truth"]),
                         ("calibration.npz", evaluation["calibration"])):
        with open(tmp_path / file, "wb") as out:
            write_npz({k: np.stack(v) for k, v in arrays.items()}, out)
    shutil.copy(segmenter, tmp_path / "segmenter.onnx")
    monkeypatch.setenv("EDGEFARM_API_URL", farm.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", farm.admin_token)
    monkeypatch.setenv("COLUMNS", "240")  # the report's tables at full width
    runner = CliRunner()
    with host_device(farm) as pool:
        for budget, exit_code, verdict in ((5000, 0, "registered as"), (0.001, 1, "not registered")):
            (tmp_path / "spec.yaml").write_text(f"""
name: cli-{secrets.token_hex(3)}
model: segmenter.onnx
devices: ["{pool}"]
compile_options: {INT8}
calibration: calibration.npz
eval_inputs: eval.npz
ground_truth: truth.npz
profile_options: {PROFILE}
metric: {{name: iou, output: mask, threshold: 0.5}}
gates: {{max_metric_drop: 0.05, max_latency_ms: {budget}}}
""")
            result = runner.invoke(app, ["pipeline", "run", str(tmp_path / "spec.yaml")])
            assert result.exit_code == exit_code, result.output
            assert verdict in result.output and "max_latency_ms" in result.output
        # --no-wait prints the id alone on stdout, for scripts
        result = runner.invoke(app, ["pipeline", "run", str(tmp_path / "spec.yaml"), "--no-wait"])
        assert result.exit_code == 0, result.output
        pipeline = ef.Client(farm.url, farm.admin_token).pipelines.get(result.stdout.strip())
        assert pipeline.wait(timeout=300) == PipelineState.FAILED

    (tmp_path / "spec.yaml").write_text("name: x\nmodel: segmenter.onnx\ndevice: [a]\n")
    result = runner.invoke(app, ["pipeline", "run", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 1 and "devices: Field required" in result.output
    assert "device: unknown key (known: name, model, devices" in " ".join(result.output.split())


def test_reference_outputs_the_dataset_store_refuses_fail_the_job_once_with_the_reason(farm, client, evaluation,
                                                                                         tmp_path):
    """An output named with a '/' (common in exported graphs) cannot be a dataset member: the reference job fails
    at once saying so, not three times over as a 'lost' worker."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 3, nets.IMAGE_SIZE, nets.IMAGE_SIZE]
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["head/mask"])], "slash",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("head/mask", TensorProto.FLOAT, shape)])
    model = tmp_path / "slash.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), model)
    with host_device(farm) as pool:
        pipeline = client.pipelines.submit(
            model, f"slash-{secrets.token_hex(3)}", [ef.Device(pool)], eval_inputs=evaluation["inputs"],
            metric={"name": "cosine", "output": "head/mask"}, gates={"min_metric": 0.99})
        assert pipeline.wait(timeout=300) == PipelineState.FAILED
    assert pipeline.failure_reason.startswith(f"reference job {pipeline.data.jobs.reference} failed: ")
    assert "the FP32 outputs cannot be stored as a dataset" in pipeline.failure_reason
    assert "head/mask" in pipeline.failure_reason
    reference = client.jobs.get(pipeline.data.jobs.reference)
    assert reference.data.attempts == 1
