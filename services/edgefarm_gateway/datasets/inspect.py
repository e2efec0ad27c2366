"""Validate an uploaded .npz of named tensors by reading only the .npy headers inside it.

Nothing is unpickled and no array is loaded: object arrays (which numpy can only store as pickles) are
refused, and the declared sizes are checked before anyone decompresses a byte of data.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from edgefarm.datasets import npy_header
from edgefarm.wire import DatasetEntry
from edgefarm_gateway.errors import BadRequest, PayloadTooLarge

HOW = "write it with numpy.savez(path, image=np.stack(samples)) — one array per input, samples along axis 0"


def inspect_dataset(path: Path, *, max_bytes: int) -> dict[str, DatasetEntry]:
    if not zipfile.is_zipfile(path):
        raise BadRequest(f"a dataset must be an .npz file; {HOW}")
    entries: dict[str, DatasetEntry] = {}
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if not members:
            raise BadRequest(f"the .npz holds no arrays; {HOW}")
        if sum(m.file_size for m in members) > max_bytes:
            raise PayloadTooLarge(f"the dataset unpacks to more than the limit of {max_bytes} bytes")
        for member in members:
            if not member.filename.endswith(".npy") or "/" in member.filename:
                raise BadRequest(f"unexpected member {member.filename!r} in the .npz; {HOW}")
            name = member.filename[: -len(".npy")]
            with archive.open(member) as f:
                shape, dtype = _read_header(f, name)
            if not shape:
                raise BadRequest(f"array {name!r} is a scalar; stack the samples along axis 0")
            expected = math.prod(shape) * dtype.itemsize + 64
            if member.file_size < expected - 64 or member.file_size > expected + 65536:
                raise BadRequest(f"array {name!r}: its header and its size disagree; the file is corrupt")
            entries[name] = DatasetEntry(count=shape[0], shape=list(shape[1:]), dtype=dtype.name)
    counts = {e.count for e in entries.values()}
    if len(counts) > 1:
        listing = ", ".join(f"{n}: {e.count}" for n, e in entries.items())
        raise BadRequest(f"every input needs the same number of samples; got {listing}")
    return entries


def _read_header(f, name: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        shape, dtype = npy_header(f)
    except ValueError as exc:
        raise BadRequest(f"array {name!r} is not a valid .npy: {exc}") from None
    if dtype.hasobject:
        raise BadRequest(f"array {name!r} holds Python objects (pickled); datasets must be numeric arrays")
    if dtype.kind not in "biuf":
        raise BadRequest(f"array {name!r} has dtype {dtype}; datasets hold numeric arrays (bool, int, float)")
    return shape, dtype
