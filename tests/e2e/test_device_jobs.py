"""The whole loop through real processes: compile on a Celery worker, then profile and inference on a real
device agent running LiteRT / ONNX Runtime on this machine's CPU, on every backend."""

from __future__ import annotations

import os
from contextlib import contextmanager
import secrets
import signal
import time

import numpy as np
import pytest

import edgefarm as ef
from edgefarm.wire import JobState
from tests import nets
from tests.runtimes import reference

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    return nets.write_segmenter_onnx(tmp_path_factory.mktemp("device-jobs") / "segmenter.onnx")


def start_agent(farm, pool: str, serial: str = "cpu-0", name: str | None = None):
    name = name or f"agent-{secrets.token_hex(3)}"
    config = farm.farm.host_agent_config(name=name, pool=pool, serial=serial)
    return farm.farm.start_agent(config, name=name)


@contextmanager
def host_device(farm):
    """A fresh pool with one host-CPU device, served by its own agent for the length of the block."""
    pool = f"Host CPU {secrets.token_hex(2)}"
    agent = start_agent(farm, pool)
    try:
        yield pool
    finally:
        stop(farm, agent)


def stop(farm, process, sig=signal.SIGTERM) -> None:
    os.killpg(process.popen.pid, sig)
    process.popen.wait(60)
    farm.farm.processes.remove(process)


def wait_until_measuring(job, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while job.get_status().code != JobState.MEASURING_PERFORMANCE:
        assert time.monotonic() < deadline and not job.get_status().finished, job.get_status()
        time.sleep(0.05)


def calibration(n: int = 32) -> dict[str, list[np.ndarray]]:
    return {"image": [image[None] for image in nets.shapes(n, seed=11)[0]]}


def test_compile_profile_and_infer_on_the_host_device(farm, client, segmenter):
    with host_device(farm) as pool:
        device = ef.Device(pool)
        compiled = client.jobs.submit_compile(segmenter, device, name="seg-int8", calibration_data=calibration(),
                                              options="--quantize_full_type int8 --quantize_io")
        profile_job = client.jobs.submit_profile(compiled, device, options="--max_profiler_iterations 20 "
                                                 "--tflite_options number_of_threads=2")
        images = nets.shapes(8, seed=99)[0]
        inference = client.jobs.submit_inference(compiled, device, {"image": [i[None] for i in images]})

        profile = profile_job.download_profile()
        summary = profile["execution_summary"]
        assert len(summary["all_inference_times"]) == summary["iterations"] == 20
        stats = summary["inference_stats"]
        assert stats["min"] <= summary["estimated_inference_time"] == stats["median"] <= stats["p99"]
        assert summary["estimated_inference_peak_memory"] > 0 and summary["first_load_time"] > 0
        assert profile["runtime"].startswith("litert") and profile["execution_detail"]
        assert summary["threads"] == 2
        assert [e.state for e in profile_job.events] == [
            JobState.CREATED, JobState.PROVISIONING_DEVICE, JobState.MEASURING_PERFORMANCE, JobState.SUCCESS]

        outputs = inference.download_output_data()
        masks = outputs[next(iter(outputs))]
        assert len(masks) == len(images)
        agree = [np.mean((got > 0) == (reference(segmenter, {"image": image[None]})["mask"] > 0))
                 for got, image in zip(masks, images)]
        assert np.mean(agree) >= 0.99  # INT8 on the device vs the FP32 source, thresholded masks
        assert any("int8" in c for c in inference.result.conversions)


def test_onnx_runtime_profile_has_per_node_times(farm, client, segmenter):
    with host_device(farm) as pool:
        job = client.jobs.submit_profile(segmenter, ef.Device(pool), options="--max_profiler_iterations 10")
        profile = job.download_profile()
        assert profile["runtime"].startswith("onnxruntime")
        timed = [op for op in profile["execution_detail"] if op["execution_time"]]
        assert timed and {op["type"] for op in timed} & {"Conv", "FusedConv"}


def test_two_agents_get_only_their_own_jobs(farm, client, segmenter):
    pools = [f"Board {secrets.token_hex(2)}" for _ in range(2)]
    agents = [start_agent(farm, pool) for pool in pools]
    try:
        jobs = {pool: [client.jobs.submit_profile(segmenter, ef.Device(pool), options="--max_profiler_iterations 3")
                       for _ in range(2)] for pool in pools}
        for pool, submitted in jobs.items():
            for job in submitted:
                assert job.wait(timeout=120).success
                assert job.profile.device.name == pool
        devices = {d.name: d.id for d in client.devices.list() if d.name in pools}
        for pool, submitted in jobs.items():
            assert {job.refresh().device_id for job in submitted} == {devices[pool]}
    finally:
        for agent in agents:
            stop(farm, agent)


def test_a_killed_agent_loses_no_job(farm, client, segmenter):
    pool = f"Board {secrets.token_hex(2)}"
    first = start_agent(farm, pool, serial="unit-1")
    job = client.jobs.submit_profile(segmenter, ef.Device(pool), name="killed-agent",
                                     options="--max_profiler_iterations 100000 --max_profiler_time 4")
    wait_until_measuring(job)
    stop(farm, first, signal.SIGKILL)
    second = start_agent(farm, pool, serial="unit-2")
    try:
        assert job.wait(timeout=120).success, job.get_status()
        assert job.data.attempts == 2
        assert any("requeued" in e.message for e in job.events)
        assert job.profile.device.serial == "unit-2"
    finally:
        stop(farm, second)


def test_a_restarted_agent_registers_its_devices_once(farm, client):
    pool, name = f"Board {secrets.token_hex(2)}", f"agent-{secrets.token_hex(3)}"
    agent = start_agent(farm, pool, name=name)
    before = [d.id for d in client.devices.list(name=pool)]
    stop(farm, agent)
    agent = start_agent(farm, pool, name=name)
    try:
        after = client.devices.list(name=pool)
        assert [d.id for d in after] == before and len(after) == 1 and after[0].state == "online"
    finally:
        stop(farm, agent)


def test_a_job_the_device_cannot_run_fails_with_the_reason(farm, client, segmenter):
    with host_device(farm) as pool:
        job = client.jobs.submit_profile(segmenter, ef.Device(pool), options="--compute_unit gpu")
        status = job.wait(timeout=60)
        assert status.failure
        assert f"device '{pool}'" in status.message and "--compute_unit gpu" in status.message
        assert client.devices.list(name=pool)[0].state == "online"  # the device is free again


def test_cancelling_a_running_job_stops_it_on_the_device(farm, client, segmenter):
    with host_device(farm) as pool:
        job = client.jobs.submit_profile(segmenter, ef.Device(pool),
                                         options="--max_profiler_iterations 100000 --max_profiler_time 120")
        wait_until_measuring(job)
        assert job.cancel().code == JobState.CANCELLED
        # The agent hears 409 at its next lease renewal (a third of the 3 s lease) and kills the job process.
        deadline = time.monotonic() + 20
        follow_up = client.jobs.submit_profile(segmenter, ef.Device(pool), options="--max_profiler_iterations 3")
        assert follow_up.wait(timeout=60).success
        assert time.monotonic() < deadline + 60
        assert job.refresh().state == JobState.CANCELLED and job.data.result is None


def test_sigterm_fails_a_job_that_outlives_the_grace_period_and_exits_0(farm, client, segmenter, tmp_path):
    pool, name = f"Host CPU {secrets.token_hex(2)}", f"agent-{secrets.token_hex(3)}"
    config = farm.farm.host_agent_config(name=name, pool=pool)
    config.write_text(config.read_text().replace("[agent]\n", "[agent]\nshutdown_grace_seconds = 1\n"))
    agent = farm.farm.start_agent(config, name=name)
    job = client.jobs.submit_profile(segmenter, ef.Device(pool),
                                     options="--max_profiler_iterations 100000 --max_profiler_time 120")
    wait_until_measuring(job)
    os.killpg(agent.popen.pid, signal.SIGTERM)
    assert agent.popen.wait(30) == 0
    farm.farm.processes.remove(agent)
    status = job.wait(timeout=30)
    assert status.failure and f"'{name}' was stopped while the job ran" in status.message
