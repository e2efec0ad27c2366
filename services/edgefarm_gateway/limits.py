"""Request limits, enforced before any route and while the body streams in (not after it has been spooled to
disk): no NUL in the URL, and the body's size, how long it may stall, and how slowly it may trickle in."""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefarm_gateway.settings import Settings


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = {"/api/v1/models": ("model", settings.max_model_bytes),
                       "/api/v1/datasets": ("dataset", settings.max_dataset_bytes)}
        self.default = ("request body", settings.max_json_bytes)
        self.idle = settings.body_idle_seconds
        self.min_rate = settings.body_min_bytes_per_second

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            # No id, name or hash holds a NUL, and PostgreSQL cannot compare one: refused before any route.
            return await _refuse(send, 400, "bad_request", "the URL holds a NUL character (%00): no id, name or "
                                 "filter value has one")
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path.startswith("/api/v1/agent/jobs/") and path.endswith("/result"):
            path = "/api/v1/datasets"  # an inference result carries its outputs, a dataset
        what, limit = self.limits.get(path, self.default)
        limit += 64 * 1024  # multipart framing around the file
        too_large = f"the {what} is larger than the gateway's limit of {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _refuse(send, 413, "payload_too_large", too_large)
        seen, complete, refused, first_byte_at = 0, False, False, None

        async def counted() -> Message:
            # A body without a Content-Length (chunked) is refused where it crosses the limit, and a body that
            # stalls, after a while. The answer is sent from here: the form parser reading the body would turn
            # any exception into its own 400.
            nonlocal seen, complete, refused, first_byte_at
            if complete:  # later calls wait for the client to go (a long poll's disconnect check): no timeout
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle)
            except TimeoutError:
                refused = True
                await _refuse(send, 408, "request_timeout", f"the request body stalled: nothing arrived for "
                              f"{self.idle:g} s (EDGEFARM_BODY_IDLE_SECONDS on the gateway)")
                raise _Refused from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            seen += len(message.get("body", b""))
            # The rate is the client's from its first byte on, not counting how long an overloaded gateway took
            # to start reading.
            first_byte_at = first_byte_at or time.monotonic()
            elapsed = time.monotonic() - first_byte_at
            if not complete and elapsed > self.idle and seen < self.min_rate * elapsed:
                refused = True
                await _refuse(send, 408, "request_timeout", f"the request body trickles in at "
                              f"{seen / elapsed:.0f} bytes/s; the gateway waits for no less than {self.min_rate:g} "
                              "(EDGEFARM_BODY_MIN_BYTES_PER_SECOND)")
                raise _Refused
            if seen > limit and not refused:
                refused = True
                await _refuse(send, 413, "payload_too_large", too_large)
                raise _Refused
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:  # the app's answer to the broken-off body is not sent: the 413 was
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except _Refused:
            pass  # answered already; whatever the app made of the broken-off body is dropped


class _Refused(Exception):
    """Raised into the app where its body was refused (too large, stalled)."""


async def _refuse(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
