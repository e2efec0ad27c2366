"""The model registry: versions a delivery pipeline registered (with the evidence that gated them), release
channels, and fetching what a channel serves, the way a device in the field does.

    client.registry.promote("portrait-seg", 3, channel="production", reason="passed the staging soak")
    got = client.registry.download("portrait-seg", "seg.tflite", channel="production", device="Pixel 8",
                                   etag=last_etag)
    if got.changed: reload(got.path); last_etag = got.etag
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from edgefarm._http import CHUNK_SIZE, ProgressCallback, error_from_response
from edgefarm.errors import EdgeFarmError
from edgefarm.models import file_name_for, resolve_destination
from edgefarm.wire import (
    ChannelEventOut,
    ChannelOut,
    ModelVersionOut,
    ModelVersionSummary,
    PromoteIn,
    RegisteredModelDetailOut,
    RegisteredModelOut,
    RollbackIn,
    VersionTarget,
)

if TYPE_CHECKING:
    from edgefarm.client import Client, ListPage

DEFAULT_CHANNEL = "production"


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _quoted(etag: str) -> str:
    """An ETag as sent back in If-None-Match: the farm's are a quoted sha256, so a bare hash is quoted here."""
    etag = etag.strip()
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def _sent_name(content_disposition: str | None) -> str | None:
    if not content_disposition:
        return None
    message = Message()
    message["content-disposition"] = content_disposition
    name = message.get_filename()
    if not name:
        return None
    name = Path(name).name
    return file_name_for(name, Path(name).suffix) if Path(name).suffix else None


@dataclass(frozen=True)
class ReleaseFile:
    """What `Registry.download` did. `changed` is False when the farm answered 304 (the caller's `etag` is still
    current): nothing was written then. Keep `etag` and pass it next time."""

    path: Path
    changed: bool
    etag: str | None
    model: str
    version: int | None
    channel: str | None = None


class ModelVersion:
    """One registered version: per-device compiled targets and the evidence (job ids, metrics, gates)."""

    def __init__(self, client: Client, data: ModelVersionOut) -> None:
        self._client = client
        self.data = data
        self.model: str = data.model
        self.number: int = data.number
        self.id: str = data.id
        self.source_model_id: str = data.source_model_id
        self.targets: list[VersionTarget] = data.targets
        self.evidence: dict[str, Any] = data.evidence
        self.pipeline_id: str | None = data.pipeline_id
        self.submitted_by: str = data.submitted_by
        self.created_at: datetime = data.created_at
        self.channels: list[str] = data.channels  # where it is current

    @property
    def devices(self) -> list[str]:
        return [t.device for t in self.targets]

    @property
    def gates(self) -> list[dict[str, Any]]:
        """The gate report, when the pipeline recorded one: [{gate, device, measured, threshold, passed}]."""
        gates = self.evidence.get("gates")
        return gates if isinstance(gates, list) else []

    @property
    def metrics(self) -> Any:
        return self.evidence.get("metrics")

    def download(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        etag: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ReleaseFile:
        return self._client.registry.download(
            self.model, path, version=self.number, device=device, etag=etag, progress=progress
        )

    def promote(self, channel: str = DEFAULT_CHANNEL, *, reason: str = "") -> ChannelOut:
        return self._client.registry.promote(self.model, self.number, channel, reason=reason)

    def __repr__(self) -> str:
        return (
            f"ModelVersion(model={self.model!r}, number={self.number}, devices={self.devices!r}, "
            f"channels={self.channels!r})"
        )


class RegisteredModel:
    """A model in the registry. From `Registry.get`, `versions` (newest first) and `events` are filled in."""

    def __init__(self, client: Client, data: RegisteredModelOut) -> None:
        self._client = client
        self.data = data
        self.id: str = data.id
        self.name: str = data.name
        self.created_at: datetime = data.created_at
        self.latest_version: int | None = data.latest_version
        self.channels: dict[str, int | None] = data.channels
        detail = data if isinstance(data, RegisteredModelDetailOut) else None
        self.versions: list[ModelVersionSummary] | None = detail.versions if detail else None
        self.events: list[ChannelEventOut] | None = detail.events if detail else None

    def version(self, number: int | None = None) -> ModelVersion:
        """A version with its targets and evidence; the latest without `number`."""
        if number is None:
            if self.latest_version is None:
                raise ValueError(f"{self.name} has no versions yet")
            number = self.latest_version
        return self._client.registry.version(self.name, number)

    def promote(self, version: int, channel: str = DEFAULT_CHANNEL, *, reason: str = "") -> ChannelOut:
        return self._client.registry.promote(self.name, version, channel, reason=reason)

    def rollback(self, channel: str = DEFAULT_CHANNEL, *, reason: str) -> ChannelOut:
        return self._client.registry.rollback(self.name, channel, reason=reason)

    def download(self, path: str | Path, **kwargs: Any) -> ReleaseFile:
        return self._client.registry.download(self.name, path, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegisteredModel) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"RegisteredModel(name={self.name!r}, latest_version={self.latest_version}, "
            f"channels={self.channels!r})"
        )


class Registry:
    """`client.registry`: registered models, their versions, channels, and fetching releases."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, *, offset: int = 0, limit: int = 50, name: str | None = None) -> ListPage[RegisteredModel]:
        """Registered models, newest first; `name` keeps those whose name contains it."""
        from edgefarm.client import ListPage

        page = self._client._transport.get("/registry/models", {"offset": offset, "limit": limit, "name": name})
        items = [RegisteredModel(self._client, RegisteredModelOut.model_validate(i)) for i in page["items"]]
        return ListPage(items, total=page["total"], offset=page["offset"], limit=page["limit"])

    def get(self, name: str) -> RegisteredModel:
        body = self._client._transport.get(f"/registry/models/{_seg(name)}")
        return RegisteredModel(self._client, RegisteredModelDetailOut.model_validate(body))

    def version(self, name: str, number: int) -> ModelVersion:
        body = self._client._transport.get(f"/registry/models/{_seg(name)}/versions/{int(number)}")
        return ModelVersion(self._client, ModelVersionOut.model_validate(body))

    def promote(
        self, name: str, version: int, channel: str = DEFAULT_CHANNEL, *, reason: str = ""
    ) -> ChannelOut:
        """Make `version` what `channel` serves (created by its first promotion). ConflictError if it already is."""
        body = PromoteIn(version=version, reason=reason).model_dump(mode="json")
        answer = self._client._transport.post(
            f"/registry/models/{_seg(name)}/channels/{_seg(channel)}/promote", body
        )
        return ChannelOut.model_validate(answer)

    def rollback(self, name: str, channel: str = DEFAULT_CHANNEL, *, reason: str) -> ChannelOut:
        """Put back the version `channel` served before its current one was promoted; `reason` is required."""
        if not reason or not reason.strip():
            raise ValueError("a rollback needs a reason, e.g. reason='accuracy regression on Pixel 8'")
        answer = self._client._transport.post(
            f"/registry/models/{_seg(name)}/channels/{_seg(channel)}/rollback",
            RollbackIn(reason=reason).model_dump(mode="json"),
        )
        return ChannelOut.model_validate(answer)

    def download(
        self,
        name: str,
        path: str | Path,
        *,
        channel: str | None = None,
        version: int | None = None,
        device: str | None = None,
        etag: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ReleaseFile:
        """Fetch what `channel` serves (default "production") or a fixed `version`, for the device pool `device`
        (may be omitted when the version has a single target).

        With `etag` (the `ReleaseFile.etag` of the last download) an unchanged release is not sent again: the
        result has `changed=False` and nothing is written. The bytes are checked against their sha256 (the ETag)
        before they replace `path`. A directory `path` gets the farm's file name (`<name>-v<N>.tflite`).
        """
        if channel is not None and version is not None:
            raise ValueError("give channel= or version=, not both")
        if version is None:
            channel = channel or DEFAULT_CHANNEL
            url = f"/registry/models/{_seg(name)}/channels/{_seg(channel)}/artifact"
        else:
            url = f"/registry/models/{_seg(name)}/versions/{int(version)}/artifact"
        params = {"device": device} if device else {}
        headers = {"If-None-Match": _quoted(etag)} if etag else {}
        target = Path(path).expanduser()
        transport = self._client._transport

        def attempt() -> ReleaseFile:
            with transport._translate_errors("GET", url), transport._http.stream(
                "GET", url, params=params, headers=headers
            ) as response:
                number = response.headers.get("x-edgefarm-version")
                fetched = {
                    "etag": response.headers.get("etag"),
                    "model": response.headers.get("x-edgefarm-model", name),
                    "version": int(number) if number and number.isdigit() else version,
                    "channel": channel,
                }
                if response.status_code == 304:
                    return ReleaseFile(path=target, changed=False, **fetched)
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                dest = resolve_destination(
                    target, _sent_name(response.headers.get("content-disposition")) or file_name_for(name, "")
                )
                self._save(response, dest, fetched["etag"], progress)
                return ReleaseFile(path=dest, changed=True, **fetched)

        return transport._retrying(True, attempt)

    @staticmethod
    def _save(response: Any, dest: Path, etag: str | None, progress: ProgressCallback | None) -> None:
        """Stream into a temporary file, check the hash, then move it into place: never a half or wrong file."""
        partial = dest.with_name(f".{dest.name}.part")
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
        digest, done = hashlib.sha256(), 0
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            expected = etag.strip('"') if etag else ""
            if re.fullmatch(r"[0-9a-f]{64}", expected) and digest.hexdigest() != expected:
                raise EdgeFarmError(
                    f"the download of {dest.name} is corrupt (sha256 {digest.hexdigest()}, expected {expected}); "
                    "nothing was saved: download it again"
                )
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
