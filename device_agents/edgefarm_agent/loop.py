"""The agent loop: register, heartbeat, lease jobs for free devices, run them, report.

Threads: one heartbeat loop, and one loop per device that long-polls the gateway for that device while it is
free and runs its job when one comes, so each device runs one job at a time and devices never wait on each
other. While a job runs, a lease keeper renews the lease (progress) every third of the lease; a 409 means
the job was cancelled or given away, and the job is stopped and dropped.

Shutdown (`stop()`, wired to SIGTERM/SIGINT): no new jobs start, running jobs get `shutdown_grace_seconds` to
finish and report; a job still running then is stopped and reported FAILED with a reason saying the agent was
stopped. Long polls in flight are not waited for (a blocked read cannot be interrupted from another thread):
their daemon threads end with the process, and the gateway, which watches for the client going away, stops
the poll. A lease that still arrives after the stop is not started; it expires and the job is queued again.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from edgefarm import __version__
from edgefarm.wire import AgentRegisterIn, AgentRegisterOut, FailureIn, JobType, Lease, LeaseIn, ProgressIn

from edgefarm_agent.backends import (
    Backend,
    InferenceOutcome,
    Job,
    JobCancelled,
    JobFailure,
    JobSpec,
    Outcome,
    ProfileOutcome,
    build_backend,
)
from edgefarm_agent.client import GatewayClient, GatewayError, GatewayUnavailable, LeaseLost
from edgefarm_agent.config import AgentConfig, DeviceConfig

logger = logging.getLogger("edgefarm_agent")

MAX_BACKOFF_SECONDS = 30.0
# How long a finished job's result (or failure) is retried while the gateway is unreachable; the lease keeper
# keeps renewing meanwhile, so the job is not handed to another device in the meantime.
REPORT_RETRY_SECONDS = 600.0
# Once stopping, reports get this long: a service manager will not wait ten minutes.
SHUTDOWN_REPORT_SECONDS = 15.0
# A lease answer that comes back much sooner than asked (no job) is not polled again at once.
MIN_POLL_SECONDS = 1.0


class AgentStopped(Exception):
    """Raised by `register()` when the agent is stopped before the gateway answered."""


class Agent:
    def __init__(self, config: AgentConfig, client: GatewayClient, *,
                 backends: Mapping[str, Backend] | None = None) -> None:
        self.config = config
        self.client = client
        self.backends = dict(backends) if backends is not None else {
            device.serial: build_backend(device) for device in config.devices}
        self.stop_event = threading.Event()
        self.registration: AgentRegisterOut | None = None
        self._device_ids: dict[str, str] = {}  # serial → the gateway's device id
        self._lock = threading.Lock()
        self._jobs_changed = threading.Condition(self._lock)
        self._busy: set[str] = set()  # serials of devices running a job
        self._running: dict[str, JobRun] = {}  # job id → its run, for shutdown

    # -- public --------------------------------------------------------------------------------------------

    def register(self) -> AgentRegisterOut:
        """Register (idempotent: the same name and serials get the same device ids). Retries while the gateway
        is unreachable; a refusal (a bad token, an invalid device) is raised as GatewayError."""
        body = AgentRegisterIn(agent_name=self.config.agent.name, version=__version__,
                               devices=[device.spec() for device in self.config.devices])
        attempt = 0
        while True:
            try:
                registration = self.client.register(body)
                break
            except GatewayUnavailable as exc:
                delay = _backoff(attempt)
                attempt += 1
                logger.warning("cannot register with the gateway (%s); trying again in %.0f s", exc, delay)
                if self.stop_event.wait(delay):
                    raise AgentStopped() from None
        ids = {device.serial: device.id for device in registration.devices}
        missing = [d.serial for d in self.config.devices if d.serial not in ids]
        if missing:
            logger.error("the gateway registered no device for serial(s) %s; they get no jobs", ", ".join(missing))
        with self._lock:
            self.registration = registration
            self._device_ids = ids
        logger.info("registered as %s (%s) with %d device(s)", self.config.agent.name, registration.agent_id,
                    len(ids))
        return registration

    def run_once(self, wait_seconds: float | None = None) -> Lease | None:
        """One lease request for every free device; runs the leased job to the end in this thread."""
        registration = self.registration or self.register()
        free = self._free_device_ids()
        if not free:
            return None
        wait = self.config.agent.lease_wait_seconds if wait_seconds is None else wait_seconds
        lease = self.client.lease(LeaseIn(agent_id=registration.agent_id, device_ids=free, wait_seconds=wait))
        if lease is not None:
            self.run_job(lease)
        return lease

    def run(self) -> None:
        """Serve until `stop()`; returns once running jobs have finished or been failed."""
        self.register()
        heartbeat_done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat_loop, args=(heartbeat_done,), name="heartbeat",
                                     daemon=True)
        heartbeat.start()
        pollers = [threading.Thread(target=self._device_loop, args=(device,), name=f"device-{device.serial}",
                                    daemon=True) for device in self.config.devices]
        for poller in pollers:
            poller.start()
        self.stop_event.wait()
        grace = self.config.agent.shutdown_grace_seconds
        logger.info("stopping: no new jobs; running jobs have %.0f s to finish", grace)
        late = self._wait_for_jobs(grace)
        for run in late:
            run.abort(f"the agent {self.config.agent.name!r} was stopped while the job ran and it did not finish "
                      f"within {grace:.0f} s; submit it again")
        self._wait_for_jobs(SHUTDOWN_REPORT_SECONDS + 5.0)
        heartbeat_done.set()
        heartbeat.join()

    def _wait_for_jobs(self, seconds: float) -> list[JobRun]:
        """Wait up to `seconds` for running jobs to end; the ones still running."""
        deadline = time.monotonic() + seconds
        with self._jobs_changed:
            while self._running and (remaining := deadline - time.monotonic()) > 0:
                self._jobs_changed.wait(remaining)
            return list(self._running.values())

    def stop(self) -> None:
        self.stop_event.set()

    def run_job(self, lease: Lease) -> None:
        """Run one leased job on its device and report the result; never raises for the job's own failures."""
        device = self._device(lease.device_id)
        if device is None:
            logger.error("job %s was leased for device %s, which this agent does not own; dropping it",
                         lease.job_id, lease.device_id)
            return
        run = JobRun(self, lease, device)
        with self._lock:
            self._busy.add(device.serial)
            self._running[lease.job_id] = run
        try:
            run.execute()
        finally:
            with self._jobs_changed:
                self._busy.discard(device.serial)
                self._running.pop(lease.job_id, None)
                self._jobs_changed.notify_all()

    # -- loops -----------------------------------------------------------------------------------------------

    def _device_loop(self, device: DeviceConfig) -> None:
        failures = 0
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                lease = self._poll(device)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any error; the gateway may come back
                if self.stop_event.is_set():
                    break
                delay = _backoff(failures)
                failures += 1
                logger.warning("lease request for %s failed (%s); trying again in %.0f s", device.serial, exc, delay)
                self.stop_event.wait(delay)
                continue
            if lease is not None and self.stop_event.is_set():
                logger.warning("job %s was leased while stopping; not started (the gateway queues it again when "
                               "its lease expires)", lease.job_id)
            elif lease is not None:
                self.run_job(lease)
            elif time.monotonic() - started < MIN_POLL_SECONDS:
                self.stop_event.wait(MIN_POLL_SECONDS)

    def _poll(self, device: DeviceConfig) -> Lease | None:
        with self._lock:
            registration, device_id = self.registration, self._device_ids.get(device.serial)
        if registration is None or device_id is None:
            self.stop_event.wait(MAX_BACKOFF_SECONDS)
            return None
        try:
            return self.client.lease(LeaseIn(agent_id=registration.agent_id, device_ids=[device_id],
                                             wait_seconds=self.config.agent.lease_wait_seconds))
        except GatewayError as exc:
            if exc.status_code == 404:  # the gateway forgot this agent (e.g. a fresh database): introduce again
                self.register()
            raise

    def _heartbeat_loop(self, done: threading.Event) -> None:
        failures = 0
        while not done.is_set():
            registration = self.registration
            assert registration is not None
            try:
                self.client.heartbeat(registration.agent_id, timeout=registration.heartbeat_seconds / 2)
                failures = 0
                # Well inside the gateway's window, with jitter so many agents do not beat in step.
                delay = registration.heartbeat_seconds * random.uniform(0.4, 0.6)
            except Exception as exc:  # noqa: BLE001 - a heartbeat loop that dies takes the devices offline
                failures += 1
                delay = min(_backoff(failures - 1), registration.heartbeat_seconds / 4)
                logger.warning("heartbeat failed (%s); trying again in %.1f s", exc, delay)
                if isinstance(exc, GatewayError) and exc.status_code == 404:
                    self._reregister_quietly()
            done.wait(delay)

    def _reregister_quietly(self) -> None:
        try:
            self.register()
        except Exception as exc:  # noqa: BLE001 - the next heartbeat tries again
            logger.warning("registering again failed: %s", exc)

    # -- devices ---------------------------------------------------------------------------------------------

    def _free_device_ids(self) -> list[str]:
        with self._lock:
            return [device_id for serial, device_id in self._device_ids.items() if serial not in self._busy]

    def _device(self, device_id: str) -> DeviceConfig | None:
        with self._lock:
            serial = next((s for s, i in self._device_ids.items() if i == device_id), None)
        return next((d for d in self.config.devices if d.serial == serial), None)


class JobRun:
    """One leased job on one device: state, lease renewal, downloads, the backend, the report."""

    def __init__(self, agent: Agent, lease: Lease, device: DeviceConfig) -> None:
        self.agent = agent
        self.client = agent.client
        self.lease = lease
        self.device = device
        assert agent.registration is not None
        self.renew_seconds = agent.registration.lease_seconds / 3
        self.cancelled = threading.Event()
        self._abort_reason: str | None = None
        self._reporting = False
        self._message = "provisioned"
        self._keeper_done = threading.Event()

    def abort(self, reason: str) -> None:
        """Stop the job now and report it failed with `reason` (shutdown)."""
        self._abort_reason = reason
        self.cancelled.set()

    def execute(self) -> None:
        lease = self.lease
        state = "MEASURING_PERFORMANCE" if lease.job_type == JobType.PROFILE else "RUNNING_INFERENCE"
        logger.info("job %s (%s) on %s", lease.job_id, lease.job_type.value, self.device.serial)
        try:
            self.client.progress(lease.job_id, ProgressIn(lease_token=lease.lease_token, state=state,
                                                          message=f"on {self.device.name} ({self.device.serial})"),
                                 retry_for=self.renew_seconds)
        except (LeaseLost, GatewayError, GatewayUnavailable) as exc:
            logger.warning("job %s: could not start (%s); dropping it", lease.job_id, exc)
            return
        keeper = threading.Thread(target=self._keep_lease, name=f"lease-{lease.job_id}", daemon=True)
        keeper.start()
        work_dir: Path | None = None
        try:
            try:
                work_dir = self._make_work_dir()
                self._report(self._run(work_dir))
            except JobFailure as failure:
                self._fail(failure.reason, failure.log)
            except JobCancelled:
                if self._abort_reason is None:
                    raise LeaseLost(409, "the lease renewal was refused") from None
                self._fail(self._abort_reason, "")
        except LeaseLost:
            logger.warning("job %s: the lease was lost (cancelled or reassigned); dropped", lease.job_id)
        except (GatewayError, GatewayUnavailable) as exc:
            # Nothing can be reported; the lease expires and the gateway queues the job again.
            logger.error("job %s: giving up on reporting to the gateway: %s", lease.job_id, exc)
        finally:
            self._keeper_done.set()
            keeper.join()
            if work_dir is not None:
                shutil.rmtree(work_dir, ignore_errors=True)

    def _make_work_dir(self) -> Path:
        root = self.agent.config.agent.work_dir
        try:
            root.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f"job-{self.lease.job_id}-", dir=root))
        except OSError as exc:
            raise JobFailure(f"the agent cannot make a work directory under {root}: {exc}") from exc

    def _run(self, work_dir: Path) -> Outcome:
        lease, backend = self.lease, self.agent.backends[self.device.serial]
        spec = JobSpec.from_lease(lease)
        backend.check(spec)
        model_path = self._download("model", work_dir / f"model.{lease.model.format}", lease.model.sha256)
        inputs_path = None
        if lease.input_dataset is not None:
            inputs_path = self._download("inputs", work_dir / "inputs.npz", lease.input_dataset.sha256)
        if self.cancelled.is_set():
            raise JobCancelled()
        job = Job(spec=spec, device=self.device.spec(), model_path=model_path, inputs_path=inputs_path,
                  work_dir=work_dir)
        return backend.run(job, cancelled=self.cancelled, progress=self._set_message)

    def _download(self, what: str, dest: Path, sha256: str) -> Path:
        self._message = f"downloading the {what}"
        try:
            return self.client.download(self.lease.job_id, what, self.lease.lease_token, dest, sha256=sha256,
                                        retry_for=self.renew_seconds)
        except LeaseLost:
            raise
        except GatewayError as exc:  # e.g. the artifact is gone from the store: retrying elsewhere will not help
            raise JobFailure(f"the gateway refused the job's {what} download: {exc.detail}") from exc

    def _report(self, outcome: Outcome) -> None:
        self._reporting = True
        lease, log = self.lease, self._log(outcome.log)
        if isinstance(outcome, ProfileOutcome):
            self.client.post_profile(lease.job_id, lease.lease_token, outcome.profile, log,
                                     retry_for=self._report_retry())
        else:
            assert isinstance(outcome, InferenceOutcome)
            result = {"runtime": outcome.runtime, "conversions": outcome.conversions, "seconds": outcome.seconds}
            self.client.post_inference(lease.job_id, lease.lease_token, outcome.outputs_path, result, log,
                                       retry_for=self._report_retry())
        logger.info("job %s: result reported", lease.job_id)

    def _fail(self, reason: str, log: str) -> None:
        self._reporting = True
        logger.warning("job %s failed: %s", self.lease.job_id, reason)
        self.client.post_failure(self.lease.job_id, FailureIn(lease_token=self.lease.lease_token, reason=reason,
                                                              log=self._log(log)), retry_for=self._report_retry())

    def _report_retry(self) -> float:
        return SHUTDOWN_REPORT_SECONDS if self.agent.stop_event.is_set() else REPORT_RETRY_SECONDS

    def _log(self, runtime_log: str) -> str:
        header = (f"edgefarm-agent {__version__} '{self.agent.config.agent.name}', device {self.device.name!r} "
                  f"(serial {self.device.serial}, backend {self.device.backend.type})\n")
        return header + runtime_log

    def _set_message(self, message: str) -> None:
        self._message = message

    def _keep_lease(self) -> None:
        while not self._keeper_done.wait(self.renew_seconds):
            try:
                self.client.progress(self.lease.job_id, ProgressIn(lease_token=self.lease.lease_token,
                                                                   message=self._message),
                                     retry_for=self.renew_seconds / 2)
            except LeaseLost:
                if not self._reporting:  # after the report, a 409 only says the job is finished
                    self.cancelled.set()
                return
            except Exception as exc:  # noqa: BLE001 - the next renewal may get through; a lease outlasts two missed
                logger.warning("job %s: lease renewal failed: %s", self.lease.job_id, exc)


def _backoff(attempt: int) -> float:
    """1, 2, 4 … 30 s, each plus up to a second of jitter so agents that lost the gateway together do not
    all return at the same instant."""
    return min(MAX_BACKOFF_SECONDS, 2.0 ** attempt) + random.uniform(0.0, 1.0)
