"""Models and datasets stored on the farm, and how a user's model argument becomes bytes to upload."""

from __future__ import annotations

import io
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from numpy.typing import NDArray

from edgefarm._http import ProgressCallback
from edgefarm.datasets import read_npz
from edgefarm.wire import DatasetEntry, DatasetOut, ModelFormat, ModelOut, TensorInfo

if TYPE_CHECKING:
    from edgefarm.client import Client

MODEL_SUFFIXES: dict[str, ModelFormat] = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".torchscript": "torchscript",
    ".tflite": "tflite",
}
FORMAT_SUFFIX: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "tflite": ".tflite"}


class Model:
    """A model stored on the farm: uploaded by someone, or the target of a compile job.

    Get one from `ef.upload_model`, `ef.get_model` or `CompileJob.get_target_model`; `model_id` is an alias of
    `id` so qai_hub scripts keep working.
    """

    def __init__(self, client: Client, data: ModelOut) -> None:
        # Stored models never change (they are addressed by content), so plain attributes are always current.
        self._client = client
        self.id: str = data.id
        self.model_id: str = data.id
        self.name: str = data.name
        self.format: ModelFormat = data.format
        self.sha256: str = data.sha256
        self.size: int = data.size
        self.inputs: list[TensorInfo] = data.inputs
        self.outputs: list[TensorInfo] = data.outputs
        self.producer_job_id: str | None = data.producer_job_id
        self.created_at: datetime = data.created_at

    @property
    def filename(self) -> str:
        """The name a download gets inside a directory: the model's name with its format's suffix."""
        return file_name_for(self.name, FORMAT_SUFFIX[self.format])

    def download(self, path: str | Path, *, progress: ProgressCallback | None = None) -> Path:
        """Save the model to `path` (a directory gets a file named after the model); returns the file."""
        dest = resolve_destination(path, self.filename)
        return self._client._transport.download(f"/models/{self.id}/download", dest, progress=progress)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Model(id={self.id!r}, name={self.name!r}, format={self.format!r})"


class Dataset:
    """A dataset stored on the farm: one array of samples per input name (calibration data, inference inputs).

    `dataset_id` is an alias of `id`, as in qai_hub.
    """

    def __init__(self, client: Client, data: DatasetOut) -> None:
        self._client = client
        self.id: str = data.id
        self.dataset_id: str = data.id
        self.name: str = data.name
        self.sha256: str = data.sha256
        self.size: int = data.size
        self.entries: dict[str, DatasetEntry] = data.entries
        self.created_at: datetime = data.created_at

    def download(self, path: str | Path, *, progress: ProgressCallback | None = None) -> Path:
        """Save the dataset's `.npz` to `path` (a directory gets `<name>.npz`); returns the file."""
        dest = resolve_destination(path, file_name_for(self.name, ".npz"))
        return self._client._transport.download(f"/datasets/{self.id}/download", dest, progress=progress)

    def to_dict(self) -> dict[str, list[NDArray[Any]]]:
        """The samples as `{input_name: [array, ...]}`, the shape `upload_dataset` takes."""
        with tempfile.TemporaryDirectory(prefix="edgefarm-") as tmp:
            return read_npz(self.download(Path(tmp) / "dataset.npz"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dataset) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        counts = {name: entry.count for name, entry in self.entries.items()}
        return f"Dataset(id={self.id!r}, name={self.name!r}, entries={counts})"


def file_name_for(name: str, suffix: str) -> str:
    """A safe file name from a user-chosen object name ("seg/int8 v2" → "seg_int8_v2.tflite")."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"
    return stem if stem.lower().endswith(suffix) else stem + suffix


def resolve_destination(path: str | Path, default_name: str) -> Path:
    dest = Path(path).expanduser()
    if dest.is_dir():
        dest = dest / default_name
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {dest}: directory {dest.parent} does not exist")
    return dest


@contextmanager
def open_model_file(model: Any) -> Iterator[tuple[str, IO[bytes]]]:
    """(file name, readable file) for any model argument the SDK accepts; files on disk stay on disk."""
    if isinstance(model, (str, Path)):
        path = Path(model).expanduser()
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise ValueError(
                f"cannot tell the format of {path}: use a file ending in {', '.join(MODEL_SUFFIXES)}"
            )
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise FileNotFoundError(f"model file {path} {problem}")
        with path.open("rb") as file:
            yield path.name, file
        return
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        yield "model" + sniff_suffix(data), io.BytesIO(data)
        return
    filename, data = serialize_framework_model(model)
    yield filename, io.BytesIO(data)


def sniff_suffix(data: bytes) -> str:
    """Model bytes carry their format: TorchScript is a zip, TFLite a flatbuffer tagged TFL3, else ONNX."""
    if data[:4] == b"PK\x03\x04":
        return ".pt"
    if data[4:8] == b"TFL3":
        return ".tflite"
    return ".onnx"


def serialize_framework_model(model: Any) -> tuple[str, bytes]:
    """Bytes of an in-memory onnx.ModelProto or TorchScript module.

    The frameworks are looked up in sys.modules rather than imported: whoever holds such an object has
    already imported its framework, and a plain `import edgefarm` must never pay for torch or onnx. (Matching
    on the type's module name would miss a user's nn.Module subclass, which lives in the user's module.)
    """
    onnx = sys.modules.get("onnx")
    if onnx is not None and isinstance(model, onnx.ModelProto):
        return "model.onnx", model.SerializeToString()
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        if not isinstance(model, torch.jit.ScriptModule):
            raise TypeError(
                f"{type(model).__name__} is a torch.nn.Module that is not TorchScript: the farm needs a "
                "graph, not Python code. Trace it first: "
                "ef.upload_model(torch.jit.trace(model.eval(), example_input))"
            )
        buffer = io.BytesIO()
        torch.jit.save(model, buffer)
        return "model.pt", buffer.getvalue()
    raise TypeError(
        "model must be a path to an .onnx/.pt/.tflite file, its bytes, an onnx.ModelProto, "
        "a torch.jit.ScriptModule (torch.jit.trace / torch.jit.script) or an ef.Model; "
        f"got {type(model).__name__}"
    )
