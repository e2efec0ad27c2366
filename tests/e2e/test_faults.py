"""The fault suite: every fault the farm says it survives, dealt through real processes again and again.

Each kind runs EDGEFARM_FAULT_TRIALS times (5 in CI, more with `make faults`) on each backend, at a point of the
job that moves from trial to trial (a seeded delay): SIGKILL of the worker's conversion process mid-conversion,
of a device agent mid-profile, of the gateway during a burst of submissions, and the loss of every message the
broker holds. Every job must end SUCCESS within its bound: none lost, none stuck, none failed for a fault the farm
recovers from. Each job's model is a variant of its own (different bytes), so no job is served from the cache.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import threading
import time
from pathlib import Path

import onnx
import pytest

import edgefarm as ef
from edgefarm.wire import JobState
from tests import nets
from tests.e2e.test_compile import _worker_children, calibration
from tests.e2e.test_device_jobs import start_agent, stop, wait_until_measuring

pytestmark = pytest.mark.e2e
TRIALS = int(os.environ.get("EDGEFARM_FAULT_TRIALS", "5"))
TRIAL = pytest.mark.parametrize("trial", range(TRIALS))
BOUND = 300  # seconds within which every job of a trial must have ended


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> Path:
    return nets.write_segmenter_onnx(tmp_path_factory.mktemp("faults") / "segmenter.onnx")


def variant(source: Path, tag: str) -> Path:
    """The same network in other bytes (its doc string names the trial): a job of its own, never a cache hit."""
    model = onnx.load(str(source))
    model.doc_string = tag
    path = source.with_name(f"{source.stem}-{tag}.onnx")
    onnx.save(model, str(path))
    return path


def ends_in_success(job, why: str) -> None:
    status = job.wait(timeout=BOUND)
    assert status.code == JobState.SUCCESS, f"{why}: job {job.id} ended {status.code.value}: {status.message}"


@TRIAL
def test_a_conversion_process_killed_mid_conversion(farm, client, segmenter, trial):
    job = client.jobs.submit_compile(variant(segmenter, f"worker-{farm.backend}-{trial}"), None,
                                     name=f"fault-worker-{trial}", options="--quantize_full_type int8",
                                     calibration_data=calibration(seed=trial, n=32))
    deadline = time.monotonic() + 120
    while job.get_status().code != JobState.OPTIMIZING_MODEL:
        assert time.monotonic() < deadline and not job.get_status().finished, job.get_status()
        time.sleep(0.05)
    time.sleep(random.Random(trial).uniform(0, 3))  # somewhere in the conversion, calibration or verification
    killed = _worker_children(farm)
    for child in killed:
        os.kill(child.pid, signal.SIGKILL)
    ends_in_success(job, f"trial {trial}: conversion process SIGKILLed")
    assert killed and job.data.attempts >= 2, job.events


@TRIAL
def test_an_agent_killed_mid_profile(farm, client, segmenter, trial):
    pool, name = f"Fault Board {secrets.token_hex(2)}", f"fault-agent-{secrets.token_hex(3)}"
    agent = start_agent(farm, pool, name=name)
    try:
        job = client.jobs.submit_profile(segmenter, ef.Device(pool), name=f"fault-agent-{trial}",
                                         options="--max_profiler_iterations 100000 --max_profiler_time 3")
        wait_until_measuring(job)
        time.sleep(random.Random(trial).uniform(0, 1.5))
        stop(farm, agent, signal.SIGKILL)
        agent = start_agent(farm, pool, name=name)  # the same agent, started again (as `edgefarm up` would)
        ends_in_success(job, f"trial {trial}: agent SIGKILLed mid-profile")
        assert job.data.attempts == 2
    finally:
        stop(farm, agent)


@TRIAL
def test_the_gateway_killed_during_a_burst_of_submissions(farm, client, segmenter, trial):
    """Four clients submit while the gateway is SIGKILLed and started again. A submission the dead gateway never
    answered may or may not exist: every job that does exist (by name) must end SUCCESS."""
    name = f"fault-gateway-{farm.backend}-{trial}-{secrets.token_hex(2)}"
    models = [client.models.upload(variant(segmenter, f"gateway-{farm.backend}-{trial}-{i}")) for i in range(4)]
    accepted, refused = [], []

    def submit(model) -> None:
        time.sleep(random.Random(model.id).uniform(0, 0.5))
        try:
            accepted.append(client.jobs.submit_compile(model, None, name=name, options="--target_runtime onnx"))
        except ef.EdgeFarmError as exc:  # the gateway died under it: the caller is told, nothing is assumed
            refused.append(exc)

    threads = [threading.Thread(target=submit, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    time.sleep(random.Random(trial).uniform(0, 0.5))
    gateway = next(p for p in farm.farm.processes if p.name == "gateway")
    os.killpg(gateway.popen.pid, signal.SIGKILL)
    gateway.popen.wait()
    farm.farm.processes.remove(gateway)
    farm.farm.start_gateway()
    for thread in threads:
        thread.join(120)
    existing = client.jobs.list(name=name, limit=50)
    assert {j.id for j in accepted} <= {j.id for j in existing}
    for job in existing:
        ends_in_success(job, f"trial {trial}: gateway SIGKILLed during submissions")


@TRIAL
def test_every_broker_message_lost(farm, client, segmenter, trial):
    """The worker is paused (SIGSTOP) so the messages wait in the broker; then they are all deleted (the embedded
    broker's folder removed, or the Redis keys dropped) and the worker resumed. The reconciler sends them again."""
    worker = next(p for p in farm.farm.processes if p.name.startswith("worker"))
    os.killpg(worker.popen.pid, signal.SIGSTOP)
    try:
        jobs = [client.jobs.submit_compile(variant(segmenter, f"broker-{farm.backend}-{trial}-{i}"), None,
                                           name=f"fault-broker-{trial}", options="--target_runtime onnx")
                for i in range(2)]
        _lose_every_message(farm)
    finally:
        os.killpg(worker.popen.pid, signal.SIGCONT)
    for job in jobs:
        ends_in_success(job, f"trial {trial}: every broker message lost")


def _lose_every_message(farm) -> None:
    if farm.backend == "sqlite":
        import shutil

        shutil.rmtree(farm.data_dir / "broker")
        return
    import redis

    env = farm.farm.env
    connection = redis.Redis.from_url(env["EDGEFARM_BROKER_URL"])
    keys = list(connection.scan_iter(match=f"{env['EDGEFARM_BROKER_KEY_PREFIX']}*"))
    assert keys, "no broker keys to lose: the messages were not in Redis"
    connection.delete(*keys)
