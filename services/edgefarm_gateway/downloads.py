"""Artifact downloads: streamed from the store, with the content hash as ETag so unchanged files are not resent."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import FileResponse

from edgefarm_gateway.errors import NotFound
from edgefarm_gateway.storage import ArtifactStore


def artifact_response(request: Request, store: ArtifactStore, sha256: str, filename: str) -> Response:
    etag = f'"{sha256}"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag})
    path = store.path(sha256)
    if not path.is_file():
        raise NotFound(f"artifact {sha256} is missing from the store; the store at {store.root} was changed by hand")
    return FileResponse(path, media_type="application/octet-stream", filename=filename, headers={"ETag": etag})
