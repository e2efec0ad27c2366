"""Gateway calls: every request the agent makes, under `{server}/api/v1/agent`, with the agent token.

The agent only ever calls out (labs sit behind NAT). Retry policy, per call:

- transient failures (connection errors, 408, 429, 5xx) are retried with exponential backoff and jitter
  (1 s, 2 s, 4 s … capped at 30 s; a `Retry-After` header is honoured) for as long as the call's
  `retry_for` allows; then GatewayUnavailable is raised and the caller's loop decides;
- result and failure posts are idempotent per lease token, downloads and progress are repeatable, so those
  retry; a lease request does not (a retried lease could take a second job), the polling loop backs off;
- 409 on a job call means the lease is gone (cancelled, or expired and given to another device): LeaseLost,
  never retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from edgefarm import __version__
from edgefarm.wire import (
    AgentRegisterIn,
    AgentRegisterOut,
    FailureIn,
    HeartbeatIn,
    Lease,
    LeaseIn,
    Profile,
    ProgressIn,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

logger = logging.getLogger("edgefarm_agent")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHUNK_SIZE = 1 << 20
T = TypeVar("T")


class GatewayError(Exception):
    """The gateway answered with an error a retry will not change. `detail` is its message for a person."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status_code})")
        self.status_code = status_code
        self.detail = detail


class LeaseLost(GatewayError):
    """409: this agent no longer holds the job; stop working on it and drop it."""


class GatewayUnavailable(Exception):
    """The gateway could not be reached, or kept failing, for longer than the call was allowed to retry."""


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GatewayClient:
    def __init__(self, server: str, token: str, *, timeout: float = 60.0, max_backoff: float = 30.0) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}", "User-Agent": f"edgefarm-agent/{__version__}"}
        base_url = f"{self.server}/api/v1/agent"
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))
        self._backoff = wait_exponential_jitter(initial=1.0, max=max_backoff, jitter=1.0)

    def close(self) -> None:
        self._http.close()

    # -- calls -----------------------------------------------------------------------------------------------

    def register(self, body: AgentRegisterIn, *, retry_for: float = 0.0) -> AgentRegisterOut:
        response = self._call(lambda: self._http.post("/register", json=_json(body)), retry_for)
        return AgentRegisterOut.model_validate(response.json())

    def heartbeat(self, agent_id: str, *, timeout: float) -> None:
        """One attempt, bounded by `timeout`: a heartbeat stuck behind a slow gateway is worth less than the next."""
        body = _json(HeartbeatIn(agent_id=agent_id))
        self._call(lambda: self._http.post("/heartbeat", json=body, timeout=timeout), 0.0)

    def lease(self, body: LeaseIn) -> Lease | None:
        """Long poll: a Lease, or None when the gateway had no job for these devices within wait_seconds."""
        timeout = httpx.Timeout(body.wait_seconds + 30.0, connect=10.0)
        response = self._call(lambda: self._http.post("/lease", json=_json(body), timeout=timeout), 0.0)
        return None if response.status_code == 204 else Lease.model_validate(response.json())

    def progress(self, job_id: str, body: ProgressIn, *, retry_for: float) -> None:
        self._call(lambda: self._http.post(f"/jobs/{job_id}/progress", json=_json(body)), retry_for)

    def download(self, job_id: str, what: str, lease_token: str, dest: Path, *, sha256: str | None = None,
                 retry_for: float) -> Path:
        """Stream `/jobs/{id}/model` or `/jobs/{id}/inputs` to `dest`, checking the sha256 when it is known."""

        def attempt() -> Path:
            digest = hashlib.sha256()
            try:
                with self._http.stream("GET", f"/jobs/{job_id}/{what}", headers={"X-Lease-Token": lease_token}) as r:
                    _raise_for_status(r)
                    with dest.open("wb") as out:
                        for chunk in r.iter_bytes(CHUNK_SIZE):
                            out.write(chunk)
                            digest.update(chunk)
            except httpx.TransportError as exc:
                raise _Transient(f"downloading the job's {what}: {exc!r}") from exc
            if sha256 is not None and digest.hexdigest() != sha256:
                raise _Transient(f"the job's {what} arrived with sha256 {digest.hexdigest()}, expected {sha256}")
            return dest

        return self._retrying(attempt, retry_for)

    def post_profile(self, job_id: str, lease_token: str, profile: Profile, log: str, *, retry_for: float) -> None:
        form = {"lease_token": lease_token, "log": log}
        # httpx encodes a body as multipart only when it has a `files` entry; a part without a file name is a
        # plain form field to the gateway, so the profile JSON goes there.
        fields = {"profile": (None, profile.model_dump_json().encode(), None)}
        self._call(lambda: self._http.post(f"/jobs/{job_id}/result", data=form, files=fields), retry_for)

    def post_inference(self, job_id: str, lease_token: str, outputs: Path, result: dict[str, Any], log: str, *,
                       retry_for: float) -> None:
        form = {"lease_token": lease_token, "result": json.dumps(result), "log": log}

        def send() -> httpx.Response:
            with outputs.open("rb") as file:  # opened per attempt: a retry sends the file from its start
                files = {"outputs": ("outputs.npz", file, "application/octet-stream")}
                return self._http.post(f"/jobs/{job_id}/result", data=form, files=files)

        self._call(send, retry_for)

    def post_failure(self, job_id: str, body: FailureIn, *, retry_for: float) -> None:
        self._call(lambda: self._http.post(f"/jobs/{job_id}/failure", json=_json(body)), retry_for)

    # -- plumbing --------------------------------------------------------------------------------------------

    def _call(self, send: Callable[[], httpx.Response], retry_for: float) -> httpx.Response:
        def attempt() -> httpx.Response:
            try:
                response = send()
            except httpx.TransportError as exc:
                raise _Transient(f"cannot reach the gateway at {self.server}: {exc!r}") from exc
            _raise_for_status(response)
            return response

        return self._retrying(attempt, retry_for)

    def _retrying(self, attempt: Callable[[], T], retry_for: float) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_delay(retry_for),
            wait=self._wait,
            before_sleep=lambda state: logger.warning("%s; retrying", state.outcome.exception()),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            raise GatewayUnavailable(str(exc)) from exc

    def _wait(self, state: RetryCallState) -> float:
        computed = self._backoff(state)
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _Transient) and failure.retry_after is not None:
            return max(computed, failure.retry_after)
        return computed


def _json(body: Any) -> Any:
    return body.model_dump(mode="json")


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    if response.is_stream_consumed is False:
        response.read()
    detail = _detail(response)
    if response.status_code in TRANSIENT_STATUS:
        raise _Transient(f"the gateway answered {response.status_code}: {detail}",
                         retry_after=_retry_after(response.headers.get("retry-after")))
    if response.status_code == 409:
        raise LeaseLost(409, detail)
    raise GatewayError(response.status_code, detail)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return response.text.strip()[:500] or response.reason_phrase


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP-date: the computed backoff is close enough for an agent
