"""Content-addressed artifact store on a local directory (a shared volume when workers run elsewhere).

Uploads are streamed into a staging file while hashed and counted; they enter the store only when the
caller keeps them (after validation), so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edgefarm_gateway.errors import NotFound, PayloadTooLarge

CHUNK = 1024 * 1024


@dataclass
class Staged:
    path: Path
    sha256: str
    size: int
    kept: bool = False


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "staging").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")  # ids never become paths unchecked
        return self.root / sha256[:2] / sha256

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} is missing from the store at {self.root}") from None

    @contextmanager
    def stage(self, source: BinaryIO, *, max_bytes: int, what: str) -> Iterator[Staged]:
        """Copy `source` to a staging file; yields it for validation. Call `keep()` to move it into the store."""
        fd, name = tempfile.mkstemp(dir=self.root / "staging")
        digest, size = hashlib.sha256(), 0
        staged = Staged(Path(name), "", 0)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"the {what} is larger than the limit of {max_bytes} bytes "
                                              f"(EDGEFARM_MAX_{what.upper()}_BYTES on the gateway)")
                    digest.update(chunk)
                    out.write(chunk)
            staged.sha256, staged.size = digest.hexdigest(), size
            yield staged
        finally:
            if not staged.kept:
                staged.path.unlink(missing_ok=True)

    def keep(self, staged: Staged) -> Path:
        final = self.path(staged.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            staged.path.unlink(missing_ok=True)  # same bytes already stored
        else:
            os.replace(staged.path, final)
        staged.kept = True
        return final

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file produced on this machine (a compiled model); returns (sha256, size)."""
        with path.open("rb") as source, self.stage(source, max_bytes=1 << 62, what="artifact") as staged:
            self.keep(staged)
            return staged.sha256, staged.size

    def copy_to(self, sha256: str, dest: Path) -> Path:
        with self.open(sha256) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        return dest
