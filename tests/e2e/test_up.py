"""`edgefarm up` (what `make run` runs) as a user would: start it, compile with the SDK's defaults, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests import nets
from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def test_edgefarm_up_runs_a_farm_the_sdk_finds_by_itself(tmp_path):
    home, port = tmp_path / "home", free_port()
    home.mkdir()
    up = _edgefarm_up(home, port)
    try:
        _wait_until_up(up, home, port)
        model = nets.write_convnet_onnx(tmp_path / "convnet.onnx")
        script = ("import edgefarm as ef, sys\n"
                  f"job = ef.submit_compile_job(model={str(model)!r}, device=ef.Device('Host CPU'))\n"
                  "print(job.wait(timeout=240).code.value)\n"
                  f"print(job.download_target_model({str(tmp_path)!r}))\n")
        done = subprocess.run([sys.executable, "-c", script], env=_env(home), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        state, target = done.stdout.split()
        assert state == "SUCCESS" and Path(target).suffix == ".tflite"
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 2
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "admin token: ef_" in output
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_service_managers_stop_or_a_closed_terminal_stops_the_whole_farm(tmp_path, stop_signal):
    """The farm's processes run in sessions of their own (a Ctrl-C reaches them only through `edgefarm up`), so a
    SIGTERM (systemctl stop, kill) or SIGHUP must be passed on too, or the gateway and workers outlive it."""
    port = free_port()
    up = _edgefarm_up(tmp_path, port, "--no-agent")
    try:
        _wait_until_up(up, tmp_path, port)
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 2  # the gateway and the worker, with its pool
    finally:
        up.send_signal(stop_signal)
        output, _ = up.communicate(timeout=60)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], output


def test_a_killed_worker_and_agent_are_started_again_and_the_farm_keeps_serving(tmp_path):
    """SIGKILL of the whole worker (its process group) and of the agent: `edgefarm up` says so, starts each again,
    and a compile and a profile submitted afterwards both succeed."""
    home, port = tmp_path / "home", free_port()
    home.mkdir()
    up = _edgefarm_up(home, port)
    try:
        _wait_until_up(up, home, port)
        logs = home / ".edgefarm" / "logs"
        before = {name: (logs / f"{name}.log").stat().st_size for name in ("worker-1", "agent")}
        children = psutil.Process(up.pid).children()
        worker = next(c for c in children if "celery" in " ".join(c.cmdline()))
        agent = next(c for c in children if "edgefarm_agent" in " ".join(c.cmdline()))
        os.killpg(worker.pid, signal.SIGKILL)
        agent.kill()

        def started_again(name: str, marker: str) -> bool:
            with (logs / f"{name}.log").open("rb") as log:
                log.seek(before[name])
                return marker in log.read().decode(errors="replace")

        deadline = time.monotonic() + 180
        while not (started_again("worker-1", "converter stack ready") and started_again("agent", "registered")):
            assert up.poll() is None and time.monotonic() < deadline, "the worker or agent was not started again"
            time.sleep(0.5)
        model = nets.write_convnet_onnx(tmp_path / "convnet.onnx")
        script = ("import edgefarm as ef\n"
                  f"job = ef.submit_compile_job(model={str(model)!r}, device=ef.Device('Host CPU'))\n"
                  "compiled = job.wait(timeout=240).code.value\n"
                  "profile = ef.submit_profile_job(model=job.get_target_model(), device=ef.Device('Host CPU'),\n"
                  "                                options='--max_profiler_iterations 3')\n"
                  "print(compiled, profile.wait(timeout=240).code.value)\n")
        done = subprocess.run([sys.executable, "-c", script], env=_env(home), capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0 and done.stdout.split() == ["SUCCESS", "SUCCESS"], done.stdout + done.stderr
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "worker-1 exited with -9" in output and "worker-1 started again" in output
    assert "agent exited with -9" in output and "agent started again" in output


def _env(home: Path) -> dict[str, str]:
    """This environment without the test run's EDGEFARM_ settings, with `home` as HOME: a user's fresh machine."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EDGEFARM_")}, "HOME": str(home)}


def _edgefarm_up(home: Path, port: int, *options: str) -> subprocess.Popen:
    edgefarm = str(Path(sys.executable).with_name("edgefarm"))
    return subprocess.Popen([edgefarm, "up", "--port", str(port), *options], env=_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_as_in_a_terminal)


def _wait_until_up(up: subprocess.Popen, home: Path, port: int, timeout: float = 180) -> None:
    """The gateway answers, `edgefarm up` has written client.ini, and the worker has imported its stack."""
    deadline = time.monotonic() + timeout
    data = home / ".edgefarm"
    while not (_healthy(port) and (data / "client.ini").exists()
               and any("ready." in log.read_text() for log in (data / "logs").glob("worker-*.log"))):
        assert up.poll() is None, up.stdout.read()
        assert time.monotonic() < deadline, "edgefarm up did not start"
        time.sleep(0.5)


def _as_in_a_terminal() -> None:
    """Ctrl-C reaches a command run in a terminal; but a test run started in the background (`&`, nohup) hands
    its children SIGINT ignored, and Python then keeps ignoring it, as it should: restore what a terminal gives."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200
    except httpx.HTTPError:
        return False
