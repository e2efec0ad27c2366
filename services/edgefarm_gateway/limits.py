"""Request body limits, enforced while the body streams in (not after it has been spooled to disk)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefarm_gateway.errors import PayloadTooLarge
from edgefarm_gateway.settings import Settings


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = {"/api/v1/models": ("model", settings.max_model_bytes),
                       "/api/v1/datasets": ("dataset", settings.max_dataset_bytes)}
        self.default = ("request body", settings.max_json_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path.startswith("/api/v1/agent/jobs/") and path.endswith("/result"):
            path = "/api/v1/datasets"  # an inference result carries its outputs, a dataset
        what, limit = self.limits.get(path, self.default)
        limit += 64 * 1024  # multipart framing around the file
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, what, limit)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"the {what} is larger than the gateway's limit of {limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, what: str, limit: int) -> None:
    import json

    body = json.dumps({"error": "payload_too_large",
                       "detail": f"the {what} is larger than the gateway's limit of {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
