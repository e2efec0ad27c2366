"""Compile through the SDK against real processes: a uvicorn gateway and a Celery worker, on every backend.

Every target is downloaded and run on held-out data, and compared with the source model in ONNX Runtime.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

import edgefarm as ef
from edgefarm.wire import CompileResult, JobState
from edgefarm_gateway.db import Database
from edgefarm_gateway.orm import Job, new_id, utcnow
from edgefarm_gateway.settings import Settings
from tests import nets
from tests.runtimes import reference, run_target

pytestmark = pytest.mark.e2e
DEVICE = None  # these farms have no agent: a compile for no particular device runs on the workers alone


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    return {"segmenter": nets.write_segmenter_onnx(d / "segmenter.onnx"),
            "unconvertible": nets.write_unconvertible_onnx(d / "unconvertible.onnx")}


def calibration(seed: int = 11, n: int = 32) -> dict[str, list[np.ndarray]]:
    images, _, _ = nets.shapes(n, seed=seed)
    return {"image": [image[None] for image in images]}


HELD_OUT = [image[None] for image in nets.shapes(12, seed=99)[0]]


def mask_agreement(source: Path, target: Path, result: CompileResult) -> float:
    agree = []
    for image in HELD_OUT:
        expected = next(iter(reference(source, {"image": image}).values()))
        got = next(iter(run_target(target, result, {"image": image}).values()))
        agree.append(np.mean((got > 0) == (expected > 0)))
    return float(np.mean(agree))


def finished(job, timeout: float = 300):
    status = job.wait(timeout=timeout)
    assert status.code == JobState.SUCCESS, f"{job.id}: {status.code} {status.message}"
    return status


@pytest.mark.parametrize("options, min_agreement", [
    ("", 0.999),
    ("--quantize_full_type float16", 0.995),
    ("--quantize_full_type int8", 0.99),
    ("--quantize_full_type int8 --quantize_io --force_channel_last_input image", 0.99),
    ("--target_runtime onnx --quantize_full_type int8", 0.99),
])
def test_onnx_model_compiles_and_the_target_agrees_with_fp32(farm, client, sources, tmp_path, options,
                                                             min_agreement):
    job = client.jobs.submit_compile(sources["segmenter"], DEVICE, name="segmenter", options=options,
                                     calibration_data=calibration() if "int8" in options else None)
    finished(job)
    result = job.result
    target = job.download_target_model(tmp_path)
    assert target.stat().st_size == result.target_size
    assert mask_agreement(sources["segmenter"], target, result) >= min_agreement
    if "--quantize_io" in options:
        assert [t.dtype for t in result.target_inputs + result.target_outputs] == ["int8", "int8"]
        assert result.target_inputs[0].layout == "NHWC" and result.target_inputs[0].quantization is not None
    assert [(e.state, e.message) for e in job.events][1:-1] == [
        (JobState.OPTIMIZING_MODEL, ""), (JobState.OPTIMIZING_MODEL, "strategy default: started"),
        (JobState.OPTIMIZING_MODEL, "strategy default: verified")]
    assert job.events[0].state == JobState.CREATED and job.events[-1].state == JobState.SUCCESS
    assert result.converter.startswith(("onnx2tf", "onnxruntime"))
    assert result.strategy == "default" and job.verification.verdict == "verified"
    assert job.verification.precision == {"int8": "int8", "float16": "float16"}.get(
        next((w for w in ("int8", "float16") if w in options), ""), "float32")


def test_torchscript_module_compiles_to_int8(farm, client, tmp_path):
    module = torch.jit.trace(nets.tiny_convnet().eval(), torch.zeros(1, 3, 32, 32))
    job = client.jobs.submit_compile(module, DEVICE, name="convnet-int8", options="--quantize_full_type int8",
                                     input_specs={"image": ((1, 3, 32, 32), "float32")},
                                     calibration_data=calibration(seed=12))
    finished(job)
    target = job.download_target_model(tmp_path / "convnet.tflite")
    agree = []
    for image in HELD_OUT:
        with torch.no_grad():
            expected = module(torch.from_numpy(image))
        logits_expected = (expected[-1] if isinstance(expected, tuple) else expected).numpy()
        outputs = run_target(target, job.result, {"image": image})
        logits = next(v for v in outputs.values() if v.shape == logits_expected.shape and v.ndim == 2)
        agree.append(logits.argmax() == logits_expected.argmax())
    assert np.mean(agree) >= 0.9


def test_a_user_cannot_read_the_farms_admin_token_through_torchscript(farm, client, tmp_path):
    """The escalation a security sweep found: a user's TorchScript read the data dir's admin token into the
    compiled model. The module that reads it in forward is refused before it runs; the one that reads it while
    being loaded never reaches the worker."""
    secret = farm.data_dir / "admin-token"
    user = ef.Client(api_url=farm.url, api_token=client.tokens.create("sweep", role="user").token)
    reader = nets.write_hostile_torchscript(tmp_path / "reader.pt", secret)
    job = user.jobs.submit_compile(reader, DEVICE, name="reads-a-file",
                                   input_specs={"image": ((1, 1, 4, 4), "float32")})
    status = job.wait(timeout=300)
    assert status.code == JobState.FAILED and "calls aten::from_file" in status.message
    assert job.target_model_id is None
    on_load = nets.write_hostile_torchscript(tmp_path / "on_load.pt", secret, on_load=True)
    with pytest.raises(ef.errors.BadRequestError, match="defines __setstate__"):
        user.models.upload(on_load)


def test_identical_request_is_served_from_the_cache(farm, client, sources):
    options, data = "--quantize_full_type int8", calibration(seed=13)
    first = client.jobs.submit_compile(sources["segmenter"], DEVICE, options=options, calibration_data=data)
    finished(first)
    started = time.monotonic()
    again = client.jobs.submit_compile(sources["segmenter"], DEVICE, options=options, calibration_data=data)
    assert again.get_status().code == JobState.SUCCESS  # at once, no worker involved
    assert time.monotonic() - started < 5
    info = client.jobs.get(again.id)
    assert info.get_target_model().id == first.get_target_model().id
    assert again.data.cache_hit is True and first.data.cache_hit is False


def test_unconvertible_op_fails_with_the_converter_message_and_the_worker_lives_on(farm, client, sources):
    job = client.jobs.submit_compile(sources["unconvertible"], DEVICE, name="unconvertible")
    status = job.wait(timeout=300)
    assert status.code == JobState.FAILED
    assert "QuickGelu" in status.message
    with pytest.raises(ef.JobFailedError, match="QuickGelu"):
        job.get_target_model()
    healthy = client.jobs.submit_compile(sources["segmenter"], DEVICE, options="--quantize_full_type float16",
                                         name="after-failure", input_specs={"image": ((1, 3, 32, 32), "float32")})
    finished(healthy)


def _worker_children(farm) -> list[psutil.Process]:
    workers = [p for p in farm.farm.processes if p.name.startswith("worker")]
    return [c for w in workers for c in psutil.Process(w.popen.pid).children(recursive=True)]


def test_worker_killed_mid_conversion_loses_nothing(farm, client, sources):
    job = client.jobs.submit_compile(sources["segmenter"], DEVICE, name="killed", options="--quantize_full_type int8",
                                     calibration_data=calibration(seed=14, n=64))
    deadline = time.monotonic() + 120
    while job.get_status().code != JobState.OPTIMIZING_MODEL:
        assert time.monotonic() < deadline and not job.get_status().finished, job.get_status()
        time.sleep(0.05)
    killed = _worker_children(farm)
    assert killed, "the Celery worker has no pool process"
    for child in killed:
        os.kill(child.pid, signal.SIGKILL)
    finished(job)
    assert job.data.attempts >= 2
    assert any("attempt 2" in e.message for e in job.events), job.events
    assert all(c.pid not in {p.pid for p in _worker_children(farm)} for c in killed)


def test_a_job_whose_message_was_lost_is_sent_again(farm, client, sources):
    """The broker never carried this job (lost message): the reconciler finds it in the database and sends it."""
    model = client.models.upload(sources["segmenter"])
    settings = Settings(data_dir=farm.data_dir, **{k.removeprefix("EDGEFARM_").lower(): v
                                                    for k, v in farm.farm.env.items()
                                                    if k in ("EDGEFARM_DATABASE_URL", "EDGEFARM_BROKER_URL")})
    db = Database(settings)
    job_id = new_id("j")
    with db.session() as session:
        session.add(Job(id=job_id, type="compile", name="lost-message", state="CREATED", model_id=model.id,
                        device={"name": "Host CPU"}, options="--target_runtime onnx",
                        enqueued_at=utcnow() - timedelta(hours=1)))
    db.engine.dispose()
    finished(client.jobs.get(job_id), timeout=120)


def test_a_restarted_gateway_strands_nothing(farm, client, sources):
    job = client.jobs.submit_compile(sources["segmenter"], DEVICE, name="gateway-restart",
                                     options="--quantize_full_type float16 --force_channel_last_output "
                                             + next(iter(client.models.upload(sources["segmenter"]).outputs)).name)
    gateway = next(p for p in farm.farm.processes if p.name == "gateway")
    os.killpg(gateway.popen.pid, signal.SIGKILL)
    gateway.popen.wait()
    farm.farm.processes.remove(gateway)
    farm.farm.start_gateway()
    finished(job)


def test_a_wrong_conversion_is_caught_rescued_and_its_strategy_reused(farm, client, tmp_path):
    """The opset-11 channel softmax (tests/nets.py) converts wrongly on the default path: the worker's
    verification catches it, the opset upgrade rescues it, and the job says so. A second compile of the same model
    and options (new verification inputs: not a cache hit) goes straight to the winning strategy."""
    source = nets.write_opset11_channel_softmax_onnx(tmp_path / "softmax.onnx")
    job = client.jobs.submit_compile(source, DEVICE, name="softmax-rescue")
    finished(job)
    result = job.result
    assert [(a.strategy, a.outcome) for a in result.attempts] == [
        ("default", "mismatch"), ("opset-upgrade", "verified")]
    assert job.verification.verdict == "verified" and job.verification.inputs == "seeded random inputs"
    target = job.download_target_model(tmp_path / "softmax.tflite")
    image = nets.shapes(1, seed=8, size=8)[0]
    expected = reference(source, {"image": image})["out"]
    np.testing.assert_allclose(run_target(target, result, {"image": image})["out"], expected, atol=1e-5)

    # The CLI's job view shows the same: the strategy, what came before it, the verdict and each output's figures.
    from typer.testing import CliRunner

    from edgefarm.cli import app

    shown = CliRunner(env={"EDGEFARM_API_URL": farm.url, "EDGEFARM_API_TOKEN": farm.admin_token}).invoke(
        app, ["jobs", "show", job.id])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())  # the table wraps long cells at the terminal's width
    assert "strategy opset-upgrade; tried: default (mismatch), opset-upgrade (verified)" in text
    assert "verification verified: float32, 4 sample(s) of seeded random inputs" in text
    check = job.verification.outputs[0]
    assert f"out: rel {check.relative_error:.2e}, max abs {check.max_abs_error:.2e}, cosine" in text

    checks = {"image": [np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)]}
    again = client.jobs.submit_compile(source, DEVICE, name="softmax-again", verification_data=checks)
    finished(again)
    assert again.data.cache_hit is False and again.data.input_dataset_id
    assert [(a.strategy, a.outcome) for a in again.result.attempts] == [("opset-upgrade", "verified")]
    assert (again.verification.inputs, again.verification.samples) == ("verification data", 1)


def test_a_model_no_strategy_converts_fails_with_each_strategys_reason(farm, client, sources):
    job = client.jobs.submit_compile(sources["unconvertible"], DEVICE, name="no-strategy")
    status = job.wait(timeout=300)
    assert status.code == JobState.FAILED
    lines = status.message.splitlines()
    assert lines[0] == "no conversion strategy produced a verified target (2 tried):"
    assert [line.split(":")[0] for line in lines[1:]] == ["- default", "- onnxruntime-folding"]
    assert all("QuickGelu" in line for line in lines[1:])
    assert "internal error" not in status.message


def test_a_strategy_that_kills_the_worker_twice_is_named_and_the_next_one_runs(farm, client, sources):
    """A converter that takes its process down (segfault, the OOM killer) looks like this to the farm: the pool
    process dies during a strategy. Once may be a restart; the second time the strategy is recorded as crashed and
    the chain goes on, instead of the job failing as a lost worker."""
    checks = {"image": [np.random.default_rng().standard_normal((1, 3, 32, 32)).astype(np.float32)]}  # a fresh key
    job = client.jobs.submit_compile(sources["segmenter"], DEVICE, name="crashing-strategy",
                                     options="--quantize_full_type float16", verification_data=checks)
    for deaths in (1, 2):
        deadline = time.monotonic() + 120
        while sum(e.message == "strategy default: started" for e in job.events) < deaths:
            assert time.monotonic() < deadline and not job.get_status().finished, job.events
            time.sleep(0.05)
            job.refresh()
        for child in _worker_children(farm):
            os.kill(child.pid, signal.SIGKILL)
    finished(job)
    first = job.result.attempts[0]
    assert (first.strategy, first.outcome) == ("default", "crashed")
    assert "died during this strategy 2 times" in first.reason
    assert job.result.strategy != "default" and job.verification.verdict == "verified"
