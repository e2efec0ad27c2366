"""Exceptions: one class per failure a caller handles differently, all under `EdgeFarmError`.

Every message carries the farm's own `detail` (which names the cause and the fix), so printing the exception
is enough for a person to act on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgefarm.options import OptionsError

if TYPE_CHECKING:
    from edgefarm.jobs import Job


class EdgeFarmError(Exception):
    """Base class of every error the SDK raises on its own (argument errors stay ValueError/TypeError)."""


class ConfigurationError(EdgeFarmError):
    """No usable API URL or token could be found."""


class APIConnectionError(EdgeFarmError):
    """The farm could not be reached, or the connection broke before an answer arrived."""


class APITimeoutError(APIConnectionError):
    """The farm did not answer within the client's timeout."""


class APIStatusError(EdgeFarmError):
    """The farm answered with an error status. `error` is the machine code, `detail` the human message."""

    def __init__(
        self, status_code: int, error: str, detail: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{detail} (HTTP {status_code} {error})")
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.retry_after = retry_after  # seconds, from the Retry-After header when the server sent one


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


STATUS_ERRORS: dict[int, tuple[type[APIStatusError], str]] = {
    400: (BadRequestError, "bad_request"),
    401: (AuthenticationError, "unauthorized"),
    403: (PermissionDeniedError, "forbidden"),
    404: (NotFoundError, "not_found"),
    409: (ConflictError, "conflict"),
    413: (PayloadTooLargeError, "payload_too_large"),
    422: (UnprocessableEntityError, "validation_error"),
    429: (RateLimitError, "rate_limited"),
}


def status_error(
    status_code: int, error: str | None, detail: str, *, retry_after: float | None = None
) -> APIStatusError:
    """The exception for an error status; `error` None means the body had no code (a proxy's page, say)."""
    cls: type[APIStatusError]
    if status_code >= 500:
        cls, default_code = InternalServerError, "internal"
    else:
        cls, default_code = STATUS_ERRORS.get(status_code, (APIStatusError, "error"))
    return cls(status_code, error or default_code, detail, retry_after=retry_after)


class JobFailedError(EdgeFarmError):
    """A job ended FAILED or CANCELLED, so the artifact asked for does not exist."""

    def __init__(self, job: Job, reason: str) -> None:
        super().__init__(f"{type(job).__name__} {job.id} ({job.name}) ended {job.state.value}: {reason}")
        self.job = job
        self.reason = reason


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "EdgeFarmError",
    "InternalServerError",
    "JobFailedError",
    "NotFoundError",
    "OptionsError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
]
