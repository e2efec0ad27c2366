"""Datasets on the wire: `{input_name: [sample, ...]}` in Python, one `.npz` array (N, *sample) per input.

The `.npz` is written without pickle, so the farm can load it with `allow_pickle=False` and never runs code
that came with a user's data.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from edgefarm.wire import TensorInfo

# What users pass: each input name maps to a list of samples, every sample shaped like the model's input.
DatasetEntries: TypeAlias = Mapping[str, Sequence[Any]]

NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: what models take and what loads without pickle


def stack_entries(data: DatasetEntries) -> dict[str, NDArray[Any]]:
    """Stack each input's samples to (N, *sample_shape); every input must have the same N."""
    if not isinstance(data, Mapping) or not data:
        raise ValueError("dataset must be a non-empty dict {input_name: [array, ...]}")
    for name, samples in data.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"dataset keys must be input names (non-empty str); got {name!r}")
        if isinstance(samples, np.ndarray) or not isinstance(samples, Sequence) or isinstance(samples, str):
            raise TypeError(
                f"dataset[{name!r}] must be a list of arrays, one per sample; got {type(samples).__name__}. "
                "For an array that holds N samples along axis 0, pass list(array)"
            )
    # Count before stacking: a ragged dataset fails fast, before any memory is spent.
    counts = {name: len(samples) for name, samples in data.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"every input needs the same number of samples; got {counts}")
    if 0 in counts.values():
        raise ValueError("dataset inputs have no samples; give at least one array per input")
    return {name: _stack(name, samples) for name, samples in data.items()}


def _stack(name: str, samples: Sequence[Any]) -> NDArray[Any]:
    arrays = [np.asarray(sample) for sample in samples]
    first = arrays[0]
    for index, array in enumerate(arrays):
        if array.shape != first.shape or array.dtype != first.dtype:
            raise ValueError(
                f"dataset[{name!r}][{index}] is {array.dtype}{list(array.shape)} but sample 0 is "
                f"{first.dtype}{list(first.shape)}; all samples of an input must share one shape and dtype"
            )
    if first.dtype.kind not in NUMERIC_KINDS:
        raise ValueError(f"dataset[{name!r}] has dtype {first.dtype}; use a numeric dtype such as float32")
    return np.stack(arrays)


def write_npz(arrays: Mapping[str, NDArray[Any]], file: IO[bytes]) -> None:
    """What `np.savez` writes, with pickle refused. Written by hand because savez takes names as keyword
    arguments, so an input called `file` (or `allow_pickle`) would collide with its own parameters."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def read_npz(path: str | Path | IO[bytes]) -> dict[str, list[NDArray[Any]]]:
    """An `.npz` back to `{name: [sample, ...]}`; refuses pickled (object) arrays."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: list(archive[name]) for name in archive.files}


def npy_header(file: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a .npy stream from its header alone: the data stays unread. Versions 2.0/3.0 differ
    from 1.0 only in the header's length field. ValueError for something that is not a .npy."""
    if np.lib.format.read_magic(file) == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(file)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    return shape, dtype


def describe_npz(path: str | Path) -> dict[str, tuple[int, tuple[int, ...], str]]:
    """{name: (count, sample_shape, dtype)} without loading the data, to check a file before uploading it."""
    described: dict[str, tuple[int, tuple[int, ...], str]] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                shape, dtype = npy_header(member)
            if dtype.hasobject or not shape:
                raise ValueError(
                    f"{path}: array {info.filename[:-4]!r} is {dtype}{list(shape)}; "
                    "each input needs a numeric array of shape (N, *sample_shape)"
                )
            described[info.filename[:-4]] = (shape[0], tuple(shape[1:]), dtype.name)
    counts = {name: entry[0] for name, entry in described.items()}
    if not described:
        raise ValueError(f"{path} holds no arrays; write one with np.savez(path, input_name=stacked_samples)")
    if len(set(counts.values())) > 1:
        raise ValueError(f"{path}: every input needs the same number of samples; got {counts}")
    return described


@dataclass(frozen=True)
class DatasetFile:
    """A dataset ready to upload: its file name, an open file, and what it holds (checked before sending)."""

    filename: str
    file: IO[bytes]
    entries: dict[str, tuple[int, tuple[int, ...], str]]


@contextmanager
def open_dataset_file(data: DatasetEntries | str | Path) -> Iterator[DatasetFile]:
    """A `{name: [array, ...]}` dict is stacked and written to a temporary `.npz`; an `.npz` path is checked
    and streamed as it is. Either way every problem is raised here, before anything is uploaded."""
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if path.suffix.lower() != ".npz":
            raise ValueError(f"a dataset file must be an .npz written by numpy; got {path}")
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise FileNotFoundError(f"dataset file {path} {problem}")
        entries = describe_npz(path)
        with path.open("rb") as file:
            yield DatasetFile(path.name, file, entries)
        return
    arrays = stack_entries(data)
    entries = {name: (a.shape[0], tuple(a.shape[1:]), a.dtype.name) for name, a in arrays.items()}
    # A temporary file rather than memory: calibration sets easily reach hundreds of MB.
    with tempfile.TemporaryFile(prefix="edgefarm-", suffix=".npz") as file:
        write_npz(arrays, file)
        del arrays  # the stacked copy is on disk now; free it for the upload
        file.seek(0)
        yield DatasetFile("dataset.npz", file, entries)


def check_inputs(
    entries: Mapping[str, tuple[Sequence[int], str]], expected: Sequence[TensorInfo], *, argument: str
) -> None:
    """Samples `{name: (sample_shape, dtype)}` against the inputs a model takes, with the farm's own rules:
    the same names, each sample shaped like the input (symbolic dimensions take any size), the same dtype.

    Run before uploading, so a mistake costs no upload; the farm checks again at submit.
    """
    names = [t.name for t in expected]
    missing = [n for n in names if n not in entries]
    unknown = [n for n in entries if n not in names]
    if missing or unknown:
        raise ValueError(
            f"{argument} must be named as the model's inputs ({', '.join(names)}); "
            f"missing: {', '.join(missing) or 'none'}, unknown: {', '.join(unknown) or 'none'}"
        )
    for tensor in expected:
        shape, dtype = entries[tensor.name]
        if len(shape) != len(tensor.shape) or any(
            isinstance(want, int) and want > 0 and want != got for want, got in zip(tensor.shape, shape)
        ):
            raise ValueError(
                f"{argument}[{tensor.name!r}]: each sample must have shape {tuple(tensor.shape)} "
                f"(batch dimension included); got {tuple(shape)}"
            )
        if dtype != tensor.dtype:
            raise ValueError(
                f"{argument}[{tensor.name!r}]: the model takes {tensor.dtype}; got {dtype} "
                f"(convert with array.astype('{tensor.dtype}'))"
            )
