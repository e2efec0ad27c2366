"""HTTP transport: one httpx client with auth, error mapping, streamed transfers and the retry policy.

Retry policy (documented for users in docs/sdk.md):

- A request that is safe to repeat (GET, and uploads, which the farm stores by sha256 so re-posting the same
  bytes returns the same object) is retried on any transport error and on 408, 429, 500, 502, 503, 504.
- Any other POST (a compile job, a cancel) is retried only when the farm cannot have acted on it: the
  connection was never established, or the farm answered 429 (rate limited) or 503 (not accepting work).
  A timeout or a dropped connection after the request was sent is *not* retried, because the job may
  already exist; the caller gets APITimeoutError/APIConnectionError and can look with `get_jobs(name=...)`.
- 409 is never retried: on this API it means the resource is in a state that a retry will not change.
- Waits grow exponentially with jitter (0.5 s, 1 s, 2 s … capped at 8 s); a `Retry-After` header replaces the
  computed wait. A `Retry-After` longer than 60 s is not slept through silently: the error is raised instead.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from edgefarm.errors import APIConnectionError, APIStatusError, APITimeoutError, status_error

logger = logging.getLogger("edgefarm")

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Answers that say the farm did not act on the request, so even a non-idempotent POST may be sent again.
NOT_PROCESSED_STATUS = frozenset({429, 503})
# Failures that happen before any byte of the request reached the farm.
UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
CHUNK_SIZE = 1 << 20

T = TypeVar("T")

# (bytes transferred so far, total bytes or None when the size is not known)
ProgressCallback = Callable[[int, int | None], None]

try:
    __version__ = version("edgefarm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The farm's `{"error", "detail"}` body as an exception; other bodies (a proxy's page) read too."""
    code: str | None = None
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            code = body["error"]
        raw = body.get("detail")
        detail = raw if isinstance(raw, str) else json.dumps(raw) if raw is not None else ""
    if not detail:
        detail = response.text.strip()[:500] or response.reason_phrase
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return status_error(response.status_code, code, detail, retry_after=retry_after)


class _ProgressReader:
    """Wraps an upload's file: httpx streams it in chunks (never whole) and we count the bytes it reads."""

    def __init__(self, file: IO[bytes], progress: ProgressCallback | None) -> None:
        self._file = file
        self._progress = progress
        start = file.tell()
        self.total = file.seek(0, os.SEEK_END)
        file.seek(start)
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._done += len(chunk)
        if self._progress is not None and chunk:
            self._progress(self._done, self.total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        if whence == os.SEEK_SET:
            self._done = position  # httpx rewinds before each attempt, so a retry restarts the count
        return position

    def tell(self) -> int:
        return self._file.tell()


class Transport:
    """Talks to `{api_url}/api/v1`; every public method returns a decoded body or raises an EdgeFarmError."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        initial_backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
    ) -> None:
        self.base_url = base_url
        self.max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._backoff = wait_exponential_jitter(
            initial=initial_backoff, max=max_backoff, jitter=initial_backoff
        )
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"edgefarm-python/{__version__}"},
        )

    def close(self) -> None:
        self._http.close()

    # -- requests --------------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._retrying(True, lambda: self._send("GET", path, params=clean)).json()

    def post(self, path: str, body: Any = None, *, idempotent: bool = False) -> Any:
        response = self._retrying(idempotent, lambda: self._send("POST", path, json=body))
        return response.json() if response.content else None

    def delete(self, path: str) -> None:
        # Not retried past the first answer: a lost 204 followed by a retry would report a false 404.
        self._retrying(False, lambda: self._send("DELETE", path))

    def upload(
        self,
        path: str,
        *,
        filename: str,
        file: IO[bytes],
        fields: Mapping[str, str | None],
        progress: ProgressCallback | None = None,
    ) -> Any:
        """POST `file` as multipart field `file`, streamed in chunks; retried (uploads are idempotent)."""
        reader = _ProgressReader(file, progress)
        data = {k: v for k, v in fields.items() if v is not None}
        files = {"file": (filename, reader, "application/octet-stream")}
        return self._retrying(True, lambda: self._send("POST", path, files=files, data=data)).json()

    def download(self, path: str, dest: Path, *, progress: ProgressCallback | None = None) -> Path:
        """Stream a GET body into `dest` via a temporary file, so a broken transfer leaves no half file."""
        partial = dest.with_name(f".{dest.name}.part")

        def attempt() -> Path:
            with self._translate_errors("GET", path), self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            partial.replace(dest)
            return dest

        try:
            return self._retrying(True, attempt)
        finally:
            partial.unlink(missing_ok=True)

    # -- plumbing --------------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._translate_errors(method, path):
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise error_from_response(response)
        return response

    @contextmanager
    def _translate_errors(self, method: str, path: str) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"{method} {self.base_url}{path} timed out ({type(exc).__name__}); "
                "the farm may be busy: try again, or pass a larger timeout= to ef.Client"
            ) from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"cannot reach the farm at {self.base_url} ({type(exc).__name__}: {exc}); "
                "check api_url (`edgefarm configure --api_url ...`) and that the gateway is running"
            ) from exc

    def _retrying(self, idempotent: bool, attempt: Callable[[], T]) -> T:
        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, APIStatusError):
                if exc.retry_after is not None and exc.retry_after > self._max_retry_after:
                    return False
                return exc.status_code in (RETRYABLE_STATUS if idempotent else NOT_PROCESSED_STATUS)
            if isinstance(exc, APIConnectionError):
                return idempotent or isinstance(exc.__cause__, UNSENT_ERRORS)
            return False

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, APIStatusError) and exc.retry_after is not None:
                return exc.retry_after
            return self._backoff(state)

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            logger.info("retrying in %.2f s (attempt %d failed: %s)", sleep, state.attempt_number, exc)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(should_retry),
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(attempt)
