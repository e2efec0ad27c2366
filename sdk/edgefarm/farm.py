"""A whole farm on one machine as child processes: gateway (uvicorn), compile workers (Celery), device agents.

Used by `edgefarm up`, by the end-to-end tests and by the benchmarks, so all three run the farm the same
way. It only starts commands; it imports none of the server packages (the SDK stays light).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class FarmStartError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    log_start: int = 0  # logs are appended across runs; this run's lines start here
    args: list[str] = field(default_factory=list)  # what started it, so a supervisor can start it again
    env: dict[str, str] = field(default_factory=dict)  # its own settings on top of the farm's

    def tail(self, lines: int = 40) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(self.log_start)
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class LocalFarm:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    agent: bool = True  # a device agent offering this machine's CPU as a device
    env: dict[str, str] = field(default_factory=dict)  # extra EDGEFARM_* settings for every process
    python: str = sys.executable
    processes: list[Process] = field(default_factory=list)
    admin_token: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["EDGEFARM_DATA_DIR"] = str(self.data_dir)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return env

    def _admin(self, *args: str) -> str:
        done = subprocess.run([self.python, "-m", "edgefarm_gateway", *args], env=self._env(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise FarmStartError(f"`python -m edgefarm_gateway {' '.join(args)}` failed:\n{done.stderr.strip()}")
        return done.stdout.strip()

    def prepare(self) -> str:
        """Migrate the database and return the local admin token (created once, kept in the data dir)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self._admin("migrate")
        self.admin_token = self._token("admin", "admin")
        return self.admin_token

    def _token(self, kind: str, role: str, *bind: str) -> str:
        """A token of this role, kept (0600) in the data dir; a new one if the kept one was revoked."""
        kept = self.data_dir / f"{kind}-token"
        return self._admin("token", "--name", f"local {kind}", "--role", role, *bind, "--keep", str(kept))

    def host_agent_config(self, name: str = "", pool: str = "Host CPU", serial: str = "host-0") -> Path:
        """An agent config offering this machine's CPU as one device (LiteRT for .tflite, ONNX Runtime for .onnx)."""
        name = name or f"{platform.node() or 'localhost'}-local"
        path = self.data_dir / f"agent-{name}.toml"
        os_name = f"{platform.system().lower()} {platform.release().split('-')[0]}"
        path.write_text(f'[agent]\nname = "{name}"\nwork_dir = "{self.data_dir / "agent-work" / name}"\n\n'
                        f'[[devices]]\nname = "{pool}"\nserial = "{serial}"\nos = "{os_name}"\n'
                        f'attributes = ["chipset:{platform.machine().lower()}", "cpu_count:{os.cpu_count()}"]\n'
                        'backend = "host"\n')
        return path

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        process = self._popen(name, args, env or {})
        self.processes.append(process)
        return process

    def _popen(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            start = out.tell()
            popen = subprocess.Popen(args, env={**self._env(), **env}, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # our signals reach it only when we send them
        return Process(name, popen, log, start, args, env)

    def restart(self, process: Process) -> Process:
        """Start an exited process again in its place (the stop order stays the start order, reversed)."""
        again = self._popen(process.name, process.args, process.env)
        self.processes[self.processes.index(process)] = again
        return again

    def start_gateway(self, timeout: float = 60) -> Process:
        process = self._spawn("gateway", [self.python, "-m", "uvicorn", "edgefarm_gateway.app:create_app",
                                          "--factory", "--host", self.host, "--port", str(self.port),
                                          "--log-level", "warning"])
        self._wait(process, lambda: httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200, timeout)
        return process

    def start_worker(self, index: int | None = None, timeout: float = 120) -> Process:
        index = len([p for p in self.processes if p.name.startswith("worker")]) + 1 if index is None else index
        name = f"worker-{index}"
        process = self._spawn(name, [self.python, "-m", "celery", "-A", "edgefarm_worker.celery_app", "worker",
                                     "-Q", "compile", "-n", f"{name}@%h", "--loglevel", "info",
                                     "--without-gossip", "--without-mingle"])
        # " ready." is the main process; "converter stack ready" a pool process that has imported TensorFlow.
        self._wait(process, lambda: " ready." in (tail := process.tail(200)) and "converter stack ready" in tail,
                   timeout)
        return process

    def start_agent(self, config: Path | None = None, name: str = "agent", timeout: float = 60) -> Process:
        """Start a device agent and wait until its devices are registered (and shown online)."""
        config = config or self.host_agent_config()
        agent_name = tomllib.loads(config.read_text()).get("agent", {}).get("name", "")
        # An agent token serves one agent; in the environment, not on the command line, which ps shows.
        env = {"EDGEFARM_AGENT_TOKEN": self._token(f"agent-{agent_name or 'host'}", "agent",
                                                   *(["--agent", agent_name] if agent_name else []))}
        process = self._spawn(name, [self.python, "-m", "edgefarm_agent", "--server", self.url, "--config",
                                     str(config)], env)

        def registered() -> bool:
            devices = httpx.get(f"{self.url}/api/v1/devices", timeout=5,
                                headers={"Authorization": f"Bearer {self.admin_token}"}).json()
            return any(d["agent_name"] == agent_name and d["state"] != "offline" for d in devices)

        self._wait(process, registered, timeout)
        return process

    def start(self) -> str:
        token = self.prepare()
        try:
            self.start_gateway()
            for _ in range(self.workers):
                self.start_worker()
            if self.agent:
                self.start_agent()
        except BaseException:
            self.stop()
            raise
        return token

    def _wait(self, process: Process, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise FarmStartError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise FarmStartError(f"{process.name} was not ready after {timeout:.0f} s:\n{process.tail()}")

    def stop(self, timeout: float = 20) -> None:
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in reversed(self.processes):
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
        self.processes.clear()

    def __enter__(self) -> LocalFarm:
        self.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def supervise(farm: LocalFarm, say: Callable[[str], None], *, interval: float = 1.0, give_up_after: int = 5,
              window: float = 600.0, max_delay: float = 60.0) -> Process | None:
    """Keep the farm's processes running until the user interrupts (returns None): one that exits is started
    again after 1, 2, 4… s (at most `max_delay`). One that exits `give_up_after` times within `window` seconds
    cannot run here (a port taken, a broken install), and is returned for the caller to stop the farm."""
    exits: dict[str, list[float]] = {}
    due: dict[str, float] = {}  # process name → when to start it again
    try:
        while True:
            now = time.monotonic()
            for process in list(farm.processes):
                code = process.popen.poll()
                if code is None or process.name in due:
                    continue
                recent = exits[process.name] = [t for t in exits.get(process.name, []) if now - t < window] + [now]
                if len(recent) >= give_up_after:
                    return process
                delay = min(max_delay, 2.0 ** (len(recent) - 1))
                say(f"{process.name} exited with {code} ({len(recent)} time(s) in {window / 60:.0f} min); starting "
                    f"it again in {delay:g} s. Last lines of {process.log}:\n{process.tail(10)}")
                due[process.name] = now + delay
            for name, when in list(due.items()):
                if now >= when:
                    farm.restart(next(p for p in farm.processes if p.name == name))
                    del due[name]
                    say(f"{name} started again")
            time.sleep(interval)
    except KeyboardInterrupt:
        return None
