"""A conversion that stalls or grows ends: over its time or memory limit the job FAILS with the cause, a cancel
ends it at once, and the worker serves the next job. Real processes: a gateway, a Celery worker, the embedded
broker."""

from __future__ import annotations

import time

import psutil
import pytest

import edgefarm as ef
from edgefarm.farm import LocalFarm
from edgefarm.wire import JobState
from tests import nets
from tests.conftest import FAST_RECOVERY, free_port

TIME_LIMIT = 30  # seconds: above the small compile below under CI's load, far below the bomb's 10^13 iterations
MEMORY_LIMIT = 3 * 2**30  # above a small compile (the worker's TensorFlow included), below the memory bomb's 8 GB


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    farm = LocalFarm(data_dir=tmp_path_factory.mktemp("limited-farm"), port=free_port(), agent=False,
                     env={**FAST_RECOVERY, "EDGEFARM_COMPILE_TIME_LIMIT_SECONDS": str(TIME_LIMIT),
                          "EDGEFARM_COMPILE_MEMORY_LIMIT_BYTES": str(MEMORY_LIMIT)})
    token = farm.start()
    yield farm, ef.Client(api_url=farm.url, api_token=token)
    farm.stop()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return nets.write_loop_bomb_onnx(tmp_path_factory.mktemp("bomb") / "loop_bomb.onnx")


def _pool_processes(farm: LocalFarm) -> set[int]:
    workers = [p for p in farm.processes if p.name.startswith("worker")]
    return {c.pid for w in workers for c in psutil.Process(w.popen.pid).children()}


def _running(job, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while job.get_status().code != JobState.OPTIMIZING_MODEL:
        assert time.monotonic() < deadline and not job.get_status().finished, job.get_status()
        time.sleep(0.2)


def test_a_stalling_model_fails_at_the_time_limit_and_the_worker_serves_the_next(limited, bomb, tmp_path):
    farm, client = limited
    job = client.jobs.submit_compile(bomb, None, name="loop-bomb")
    started = time.monotonic()
    status = job.wait(timeout=TIME_LIMIT + 90)
    assert status.code == JobState.FAILED
    assert f"ran longer than {TIME_LIMIT} s, the limit (EDGEFARM_COMPILE_TIME_LIMIT_SECONDS)" in status.message
    assert TIME_LIMIT <= time.monotonic() - started < TIME_LIMIT + 60
    healthy = client.jobs.submit_compile(nets.write_convnet_onnx(tmp_path / "convnet.onnx"), None, name="after")
    assert healthy.wait(timeout=300).code == JobState.SUCCESS


def test_a_cancel_ends_the_running_conversion(limited, bomb):
    farm, client = limited
    job = client.jobs.submit_compile(bomb, None, name="cancelled-bomb")
    _running(job)
    before = _pool_processes(farm)
    cancelled = time.monotonic()
    assert job.cancel().code == JobState.CANCELLED
    deadline = cancelled + 15  # the watchdog renews every few seconds
    while _pool_processes(farm) & before:
        assert time.monotonic() < deadline, "the pool process running the cancelled conversion still runs"
        time.sleep(0.2)
    assert time.monotonic() - cancelled < TIME_LIMIT  # ended by the cancel, not by the time limit
    assert job.get_status().code == JobState.CANCELLED


def test_a_model_that_grows_memory_fails_at_the_memory_limit_and_the_worker_serves_the_next(limited, tmp_path):
    farm, client = limited
    job = client.jobs.submit_compile(nets.write_memory_bomb_onnx(tmp_path / "memory_bomb.onnx"), None,
                                     name="memory-bomb")
    status = job.wait(timeout=TIME_LIMIT + 90)
    assert status.code == JobState.FAILED
    assert "GB of memory, over the limit of 3.0 GB (EDGEFARM_COMPILE_MEMORY_LIMIT_BYTES)" in status.message, status
    healthy = client.jobs.submit_compile(nets.write_convnet_onnx(tmp_path / "convnet.onnx"), None, name="after-memory")
    assert healthy.wait(timeout=300).code == JobState.SUCCESS
