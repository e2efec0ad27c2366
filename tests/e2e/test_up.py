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
